/* Placeholder until fmviz lands; replaced by its owner. */
#include <stdio.h>
int main(void) { fprintf(stderr, "fmviz: not built yet\n"); return 2; }
