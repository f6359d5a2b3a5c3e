/* Callgrind markers for bench/peers/worker.py: zero the counters before a batch, dump them (labelled) after it.
 * cg_start turns instrumentation on after the imports (run valgrind with --instr-atstart=no: imports under full
 * instrumentation take minutes). Outside valgrind every macro is a no-op. Built by bench/overhead.py --callgrind into bench/.venvs/cgmark.so. */
#include <valgrind/callgrind.h>
#include <valgrind/valgrind.h>

void cg_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void cg_zero(void) { CALLGRIND_ZERO_STATS; }
void cg_dump(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
int cg_on_valgrind(void) { return RUNNING_ON_VALGRIND; }
