// libkiln-trace.so, built first, carried inside every program that links
// kiln_cache, so that a kiln copied anywhere can still trace the compiler
// (default_trace_library() writes it out once under the cache directory).
#ifndef KILN_TRACE_LIBRARY_FILE
#error "KILN_TRACE_LIBRARY_FILE must name the built libkiln-trace.so"
#endif

asm(".section .rodata\n"
    ".balign 16\n"
    ".globl kiln_trace_blob\n"
    "kiln_trace_blob:\n"
    ".incbin \"" KILN_TRACE_LIBRARY_FILE
    "\"\n"
    ".globl kiln_trace_blob_end\n"
    "kiln_trace_blob_end:\n"
    ".previous\n");
