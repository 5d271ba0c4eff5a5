#!/bin/sh
# The tools see the library only through flexmask.h and flexmask_tools.h
# (DEVELOPERS.md, "Rules of the house"): any other project header included
# from tools/ fails this test, naming the file and line.
# usage: tools_include_rule.sh SOURCE_DIR
src=${1:?usage: $0 SOURCE_DIR}
inc='^[[:space:]]*#[[:space:]]*include[[:space:]]*'
bad=$({
    grep -Hn "$inc\"" "$src"/tools/*.c "$src"/tools/*.h |
        grep -v -E '"(flexmask\.h|flexmask_tools\.h|tools/[A-Za-z0-9_]+\.h)"'
    grep -Hn -E "$inc<(dsl|compiler|runtime|kernels|include)/" "$src"/tools/*.c "$src"/tools/*.h
})
if [ -n "$bad" ]; then
    echo "tools/ may include only flexmask.h, flexmask_tools.h and tools/*.h; found:"
    echo "$bad"
    exit 1
fi
n=$(ls "$src"/tools/*.c | wc -l)
echo "include rule holds for $n tool sources"
