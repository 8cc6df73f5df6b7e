/* Calls the Gemmini backend (matmul_gemmini.c against include/gemmini.h here) three times and
 * prints what the stand-in recorded (tests/test_gemmini.py). */
#include <stdio.h>

#include "matmul.h"

int mock_flushes, mock_calls, mock_low_d, mock_commands_before_flush;

int main(void)
{
    ef_elem a[4] = {0}, b[4] = {0}, c[4] = {0};
    for (int i = 0; i < 3; ++i)
        ef_matmul_backend(2, 2, 2, a, b, c, c, 2, 2, 2, 2, 1.0f, false, false, false);
    printf("flushes %d calls %d low_D %d before_flush %d\n", mock_flushes, mock_calls,
           mock_low_d, mock_commands_before_flush);
    return 0;
}
