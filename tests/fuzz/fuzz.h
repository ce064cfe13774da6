/* fuzz.h: what every libFuzzer harness of tests/fuzz shares. A harness defines FUZZ_NAME
 * (a string literal, its name in messages) before including this. */
#ifndef EF_FUZZ_H
#define EF_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property every input must have: when it fails, say which, then abort so that libFuzzer
 * keeps the input. */
#define PROP(cond)                                                                       \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, FUZZ_NAME ": property failed: %s (%s:%d)\n", #cond, __FILE__, \
                    __LINE__);                                                           \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#endif
