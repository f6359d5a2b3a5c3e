module github.com/llmotel/llmotel/collector/llmsliconnector

go 1.25
