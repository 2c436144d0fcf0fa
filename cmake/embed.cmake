# embed.cmake - turn a text file into a C array (cmake -DIN=file -DOUT=file.c -DNAME=sym -P embed.cmake):
# const char NAME[] (NUL-terminated) and const size_t NAME_len (without the NUL).
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR n "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}" "/* generated from ${IN} by embed.cmake: do not edit */\n#include <stddef.h>\n"
  "extern const char ${NAME}[];\nextern const size_t ${NAME}_len;\n"
  "const char ${NAME}[] = {\n${bytes}0x00};\nconst size_t ${NAME}_len = ${n};\n")
