# cmake -DIN=file -DOUT=file.c -DSYM=name -P embed.cmake
# Writes `const char SYM[]` (the bytes of IN, NUL-terminated) and
# `const unsigned long SYM_len` (without the NUL) as C source.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" nhex)
math(EXPR len "${nhex} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# Break the initializer into lines of 16 bytes for the compiler's sake.
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
get_filename_component(name ${IN} NAME)
file(WRITE ${OUT}.tmp
  "/* Generated from kernels/${name} by kernels/embed.cmake; do not edit. */\n"
  "#include <stddef.h>\n"
  "const char ${SYM}[] = {\n${bytes}0x00};\n"
  "const size_t ${SYM}_len = ${len};\n")
file(RENAME ${OUT}.tmp ${OUT})
