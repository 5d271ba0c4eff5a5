/* Malformed mask files and the exact diagnostics fmc check prints for them
 * (file name t.mask). Included by test_dsl.c; one BAD(name, source, expected)
 * per case. */
    BAD("unknown_name_with_hint", "param window = 256;\nmask m = q - kv < windw;\n",
     "t.mask:2:19: error: unknown name 'windw'\n"
     "mask m = q - kv < windw;\n"
     "                  ^^^^^\n"
     "hint: did you mean 'window'?\n"),
    BAD("unknown_name_no_hint", "mask m = zzzzqqq < q;\n",
     "t.mask:1:10: error: unknown name 'zzzzqqq'\n"
     "mask m = zzzzqqq < q;\n"
     "         ^^^^^^^\n"),
    BAD("unknown_name_case_hint", "mask m = kv < q_len;\n",
     "t.mask:1:15: error: unknown name 'q_len'\n"
     "mask m = kv < q_len;\n"
     "              ^^^^^\n"
     "hint: did you mean 'Q_LEN'?\n"),
    BAD("unknown_function_hint", "mask m = mni(q, kv) < 3;\n",
     "t.mask:1:10: error: unknown function 'mni'\n"
     "mask m = mni(q, kv) < 3;\n"
     "         ^^^\n"
     "hint: did you mean 'min'?\n"),
    BAD("unknown_function", "mask m = foo(q) < 3;\n",
     "t.mask:1:10: error: unknown function 'foo'\n"
     "mask m = foo(q) < 3;\n"
     "         ^^^\n"
     "hint: the functions are 'min', 'max' and 'abs'\n"),
    BAD("param_called", "param w = 3;\nmask m = w(q) < 3;\n",
     "t.mask:2:10: error: 'w' is a param, not a function\n"
     "mask m = w(q) < 3;\n"
     "         ^\n"),
    BAD("function_as_value", "mask m = min < q;\n",
     "t.mask:1:10: error: 'min' is a function\n"
     "mask m = min < q;\n"
     "         ^^^\n"
     "hint: call it, e.g. 'min(a, b)'\n"),
    BAD("and_int_operands", "mask m = q && kv;\n",
     "t.mask:1:10: error: operand of '&&' must be bool, found int\n"
     "mask m = q && kv;\n"
     "         ^\n"
     "t.mask:1:15: error: operand of '&&' must be bool, found int\n"
     "mask m = q && kv;\n"
     "              ^^\n"),
    BAD("or_int_operand", "mask m = kv <= q || 1;\n",
     "t.mask:1:21: error: operand of '||' must be bool, found int\n"
     "mask m = kv <= q || 1;\n"
     "                    ^\n"),
    BAD("mask_not_bool", "mask m = q + 1;\n",
     "t.mask:1:10: error: mask 'm' must be bool, found int\n"
     "mask m = q + 1;\n"
     "         ^^^^^\n"
     "hint: compare it, e.g. 'x != 0'\n"),
    BAD("eq_int_bool", "mask m = q == true;\n",
     "t.mask:1:10: error: operands of '==' must have the same type, found int and bool\n"
     "mask m = q == true;\n"
     "         ^^^^^^^^^\n"),
    BAD("not_int", "mask m = !q;\n",
     "t.mask:1:11: error: operand of '!' must be bool, found int\n"
     "mask m = !q;\n"
     "          ^\n"),
    BAD("neg_bool", "mask m = -(q < kv);\n",
     "t.mask:1:11: error: operand of unary '-' must be int, found bool\n"
     "mask m = -(q < kv);\n"
     "          ^^^^^^^^\n"),
    BAD("cond_not_bool", "mask m = q ? true : false;\n",
     "t.mask:1:10: error: condition of '?:' must be bool, found int\n"
     "mask m = q ? true : false;\n"
     "         ^\n"
     "hint: compare it, e.g. 'x != 0'\n"),
    BAD("cond_branch_types", "mask m = q < kv ? 1 : false;\n",
     "t.mask:1:19: error: branches of '?:' have different types: int and bool\n"
     "mask m = q < kv ? 1 : false;\n"
     "                  ^^^^^^^^^\n"),
    BAD("chained_comparison", "mask m = 0 <= q < 10;\n",
     "t.mask:1:10: error: comparisons do not chain\n"
     "mask m = 0 <= q < 10;\n"
     "         ^^^^^^^^^^^\n"
     "hint: write '0 <= q && q < 10'\n"),
    BAD("parenthesized_comparison", "mask m = (q < kv) < 1;\n",
     "t.mask:1:10: error: operand of '<' must be int, found bool\n"
     "mask m = (q < kv) < 1;\n"
     "         ^^^^^^^^\n"),
    BAD("redeclaration", "param w = 1;\nlet w = 2;\nmask m = q < w;\n",
     "t.mask:2:5: error: 'w' is already declared\n"
     "let w = 2;\n"
     "    ^\n"
     "hint: the first declaration is on line 1\n"),
    BAD("use_before_declaration", "mask m = q < w;\nparam w = 4;\n",
     "t.mask:1:14: error: 'w' is used before its declaration\n"
     "mask m = q < w;\n"
     "             ^\n"
     "hint: 'w' is declared on line 2; move the declaration up\n"),
    BAD("self_reference", "let x = x + 1;\nmask m = x < q;\n",
     "t.mask:1:9: error: 'x' is used in its own declaration\n"
     "let x = x + 1;\n"
     "        ^\n"),
    BAD("wrong_index_count", "input doc[KV_LEN];\nmask m = doc[q, kv] == 0;\n",
     "t.mask:2:10: error: 'doc' has 1 dimension, but 2 indices are given\n"
     "mask m = doc[q, kv] == 0;\n"
     "         ^^^^^^^^^^\n"),
    BAD("input_without_index", "input doc[KV_LEN];\nmask m = doc == q;\n",
     "t.mask:2:10: error: input 'doc' is used without indices\n"
     "mask m = doc == q;\n"
     "         ^^^\n"
     "hint: read an element, e.g. 'doc[kv]'\n"),
    BAD("param_indexed", "param w = 3;\nmask m = w[0] < q;\n",
     "t.mask:2:10: error: 'w' is a param, not an input; only inputs take indices\n"
     "mask m = w[0] < q;\n"
     "         ^\n"),
    BAD("builtin_indexed", "mask m = q[0] < kv;\n",
     "t.mask:1:10: error: 'q' is not an input; only inputs take indices\n"
     "mask m = q[0] < kv;\n"
     "         ^\n"),
    BAD("bool_index", "input doc[KV_LEN];\nmask m = doc[q < kv] == 0;\n",
     "t.mask:2:14: error: index of 'doc' must be int, found bool\n"
     "mask m = doc[q < kv] == 0;\n"
     "             ^^^^^^\n"),
    BAD("literal_over_64_bits", "mask m = q < 18446744073709551616;\n",
     "t.mask:1:14: error: integer literal out of the 64-bit range\n"
     "mask m = q < 18446744073709551616;\n"
     "             ^^^^^^^^^^^^^^^^^^^^\n"
     "hint: ints are signed 64-bit: -9223372036854775808 to 9223372036854775807\n"),
    BAD("literal_over_int64", "mask m = q < 9223372036854775808;\n",
     "t.mask:1:14: error: integer literal out of the 64-bit range\n"
     "mask m = q < 9223372036854775808;\n"
     "             ^^^^^^^^^^^^^^^^^^^\n"
     "hint: ints are signed 64-bit: -9223372036854775808 to 9223372036854775807\n"),
    BAD("param_default_range", "param p = -9223372036854775809;\nmask m = q < p;\n",
     "t.mask:1:11: error: integer literal out of the 64-bit range\n"
     "param p = -9223372036854775809;\n"
     "          ^^^^^^^^^^^^^^^^^^^^\n"
     "hint: ints are signed 64-bit: -9223372036854775808 to 9223372036854775807\n"),
    BAD("constant_add_overflow", "let x = 9223372036854775807 + 1;\nmask m = q < x;\n",
     "t.mask:1:9: error: integer overflow: 9223372036854775807 + 1 is out of the 64-bit range\n"
     "let x = 9223372036854775807 + 1;\n"
     "        ^^^^^^^^^^^^^^^^^^^^^^^\n"
     "hint: ints are signed 64-bit: -9223372036854775808 to 9223372036854775807\n"),
    BAD("constant_mul_overflow", "mask m = q < 4611686018427387904 * 2;\n",
     "t.mask:1:14: error: integer overflow: 4611686018427387904 * 2 is out of the 64-bit range\n"
     "mask m = q < 4611686018427387904 * 2;\n"
     "             ^^^^^^^^^^^^^^^^^^^^^^^\n"
     "hint: ints are signed 64-bit: -9223372036854775808 to 9223372036854775807\n"),
    BAD("constant_div_overflow", "mask m = q < -9223372036854775808 / -1;\n",
     "t.mask:1:14: error: integer overflow: -9223372036854775808 / -1 is out of the 64-bit range\n"
     "mask m = q < -9223372036854775808 / -1;\n"
     "             ^^^^^^^^^^^^^^^^^^^^^^^^^\n"
     "hint: ints are signed 64-bit: -9223372036854775808 to 9223372036854775807\n"),
    BAD("division_by_zero", "mask m = q / 0 < kv;\n",
     "t.mask:1:14: error: division by zero\n"
     "mask m = q / 0 < kv;\n"
     "             ^\n"
     "hint: the divisor is always 0\n"),
    BAD("modulo_by_folded_zero", "mask m = q % (3 - 3) == 0;\n",
     "t.mask:1:14: error: modulo by zero\n"
     "mask m = q % (3 - 3) == 0;\n"
     "             ^^^^^^^\n"
     "hint: the divisor is always 0\n"),
    BAD("invalid_utf8_in_comment", "mask m = q < kv; # caf\xe9\n",
     "t.mask:1:23: error: invalid UTF-8 byte 0xe9\n"
     "mask m = q < kv; # caf?\n"
     "                      ^\n"
     "hint: mask files must be UTF-8 text\n"),
    BAD("invalid_utf8_in_code", "mask m = q <\xff kv;\n",
     "t.mask:1:13: error: invalid UTF-8 byte 0xff\n"
     "mask m = q <? kv;\n"
     "            ^\n"
     "hint: mask files must be UTF-8 text\n"),
    BAD("nul_byte", "mask m = q\x00 < kv;\n",
     "t.mask:1:11: error: unexpected NUL byte\n"
     "mask m = q? < kv;\n"
     "          ^\n"
     "hint: mask files are text; is this a binary file?\n"),
    BAD("control_character", "mask m = q <\x01 kv;\n",
     "t.mask:1:13: error: unexpected control character 0x01\n"
     "mask m = q <? kv;\n"
     "            ^\n"),
    BAD("unexpected_character", "mask m = q @ kv;\n",
     "t.mask:1:12: error: unexpected character '@'\n"
     "mask m = q @ kv;\n"
     "           ^\n"),
    BAD("single_ampersand", "mask m = q < kv & q > 2;\n",
     "t.mask:1:17: error: unexpected character '&'\n"
     "mask m = q < kv & q > 2;\n"
     "                ^\n"
     "hint: did you mean '&&'?\n"),
    BAD("non_ascii_character", "mask m = q \xe2\x89\xa4 kv;\n",
     "t.mask:1:12: error: unexpected character '\xe2\x89\xa4' (U+2264)\n"
     "mask m = q \xe2\x89\xa4 kv;\n"
     "           ^\n"
     "hint: only ASCII is allowed outside comments\n"),
    BAD("malformed_literal", "mask m = q < 1__000;\n",
     "t.mask:1:14: error: malformed integer literal '1__000'\n"
     "mask m = q < 1__000;\n"
     "             ^^^^^^\n"
     "hint: integers are decimal digits, with '_' allowed between digits (131_072)\n"),
    BAD("unterminated_statement", "mask m = kv <= q\n",
     "t.mask:1:17: error: missing ';' at the end of the statement\n"
     "mask m = kv <= q\n"
     "                ^\n"),
    BAD("missing_semicolon", "let c = kv <= q\nmask m = c;\n",
     "t.mask:1:16: error: missing ';' at the end of the statement\n"
     "let c = kv <= q\n"
     "               ^\n"),
    BAD("unterminated_expression", "mask m = kv <=\n",
     "t.mask:1:15: error: expected an expression, found end of file\n"
     "mask m = kv <=\n"
     "              ^\n"),
    BAD("unbalanced_parenthesis", "mask m = (q < kv));\n",
     "t.mask:1:18: error: expected ';', found ')'\n"
     "mask m = (q < kv));\n"
     "                 ^\n"
     "hint: this ')' has no matching '('\n"),
    BAD("missing_operator", "mask m = q kv;\n",
     "t.mask:1:12: error: expected an operator or ';', found 'kv'\n"
     "mask m = q kv;\n"
     "           ^^\n"),
    BAD("assignment_in_expression", "mask m = q = kv;\n",
     "t.mask:1:12: error: expected ';', found '='\n"
     "mask m = q = kv;\n"
     "           ^\n"
     "hint: to compare, write '=='\n"),
    BAD("missing_name", "let = 3;\nmask m = q < kv;\n",
     "t.mask:1:5: error: expected a name, found '='\n"
     "let = 3;\n"
     "    ^\n"),
    BAD("not_a_statement", "x = 4;\nmask m = q < kv;\n",
     "t.mask:1:1: error: expected a statement, found 'x'\n"
     "x = 4;\n"
     "^\n"
     "hint: statements start with 'param', 'input', 'let' or 'mask'\n"),
    BAD("input_without_dimensions", "input d[];\nmask m = kv < 4;\n",
     "t.mask:1:9: error: expected a dimension, found ']'\n"
     "input d[];\n"
     "        ^\n"
     "hint: a dimension is an integer, a param, Q_LEN, KV_LEN, BATCH or HEADS\n"),
    BAD("param_default_not_literal", "param w = q;\nmask m = kv < w;\n",
     "t.mask:1:11: error: expected an integer, found 'q'\n"
     "param w = q;\n"
     "          ^\n"),
    BAD("extra_semicolon", "mask m = q < kv;;\n",
     "t.mask:1:17: error: expected a statement, found ';'\n"
     "mask m = q < kv;;\n"
     "                ^\n"),
    BAD("missing_call_argument", "mask m = min(q,) < 1;\n",
     "t.mask:1:16: error: expected an expression, found ')'\n"
     "mask m = min(q,) < 1;\n"
     "               ^\n"),
    BAD("crlf_line_endings", "param w = 4;\r\nmask m = q < w && kv;\r\n",
     "t.mask:2:19: error: operand of '&&' must be bool, found int\n"
     "mask m = q < w && kv;\n"
     "                  ^^\n"),
    BAD("tab_alignment", "mask m =\tq <\tzz;\n",
     "t.mask:1:14: error: unknown name 'zz'\n"
     "mask m =\tq <\tzz;\n"
     "        \t   \t^^\n"),
    BAD("empty_file", "",
     "t.mask:1:1: error: empty file: no mask declared\n"
     "\n"
     "^\n"
     "hint: add one, e.g. 'mask causal = kv <= q;'\n"),
    BAD("comments_only", "# nothing here\n",
     "t.mask:1:1: error: no mask declared: the file has no statements\n"
     "# nothing here\n"
     "^\n"
     "hint: add one, e.g. 'mask causal = kv <= q;'\n"),
    BAD("no_mask", "param w = 3;\nlet c = kv <= q;\n",
     "t.mask:2:17: error: no mask declared\n"
     "let c = kv <= q;\n"
     "                ^\n"
     "hint: add one, e.g. 'mask causal = kv <= q;'\n"),
    BAD("reserved_builtin_name", "let q = 3;\nmask m = kv < 4;\n",
     "t.mask:1:5: error: cannot declare 'q': it is a built-in name\n"
     "let q = 3;\n"
     "    ^\n"
     "hint: 'q' is always the query position; choose another name\n"),
    BAD("reserved_keyword", "let true = 3;\nmask m = kv < 4;\n",
     "t.mask:1:5: error: cannot declare 'true': it is a keyword\n"
     "let true = 3;\n"
     "    ^^^^\n"
     "hint: choose another name\n"),
    BAD("reserved_function", "param min = 3;\nmask m = kv < 4;\n",
     "t.mask:1:7: error: cannot declare 'min': it is a built-in function\n"
     "param min = 3;\n"
     "      ^^^\n"
     "hint: choose another name\n"),
    BAD("dimension_negative", "input doc[-1];\nmask m = doc[kv] == 0;\n",
     "t.mask:1:11: error: dimension of input 'doc' cannot be negative, found -1\n"
     "input doc[-1];\n"
     "          ^^\n"),
    BAD("dimension_unknown", "input doc[LEN];\nmask m = doc[kv] == 0;\n",
     "t.mask:1:11: error: unknown name 'LEN'\n"
     "input doc[LEN];\n"
     "          ^^^\n"
     "hint: did you mean 'Q_LEN'?\n"),
    BAD("dimension_not_param", "let n = 4;\ninput doc[n];\nmask m = doc[kv] == 0;\n",
     "t.mask:2:11: error: 'n' is a let; it cannot be a dimension\n"
     "input doc[n];\n"
     "          ^\n"
     "hint: a dimension is an integer, a param, Q_LEN, KV_LEN, BATCH or HEADS\n"),
    BAD("too_many_dimensions", "input t[1, 2, 3, 4, 5];\nmask m = t[0, 0, 0, 0, 0] == 0;\n",
     "t.mask:1:21: error: input 't' has 5 dimensions; at most 4 are allowed\n"
     "input t[1, 2, 3, 4, 5];\n"
     "                    ^\n"
     "hint: inputs have 1 to 4 dimensions\n"),
    BAD("min_argument_count", "mask m = min(q) < kv;\n",
     "t.mask:1:10: error: 'min' takes 2 arguments, found 1\n"
     "mask m = min(q) < kv;\n"
     "         ^^^^^^\n"),
    BAD("abs_argument_count", "mask m = abs(q, kv) < 3;\n",
     "t.mask:1:10: error: 'abs' takes 1 argument, found 2\n"
     "mask m = abs(q, kv) < 3;\n"
     "         ^^^^^^^^^^\n"),
    BAD("bool_argument", "mask m = max(q, true) < kv;\n",
     "t.mask:1:17: error: argument of 'max' must be int, found bool\n"
     "mask m = max(q, true) < kv;\n"
     "                ^^^^\n"),
    BAD("several_errors", "param window = 256;\nmask m1 = q < windw;\nmask m2 = q && kv < 1;\nmask m3 = q / 0 < 1;\nlet d = q +;\nmask m4 = kv <= q\n",
     "t.mask:2:15: error: unknown name 'windw'\n"
     "mask m1 = q < windw;\n"
     "              ^^^^^\n"
     "hint: did you mean 'window'?\n"
     "t.mask:3:11: error: operand of '&&' must be bool, found int\n"
     "mask m2 = q && kv < 1;\n"
     "          ^\n"
     "t.mask:4:15: error: division by zero\n"
     "mask m3 = q / 0 < 1;\n"
     "              ^\n"
     "hint: the divisor is always 0\n"
     "t.mask:5:12: error: expected an expression, found ';'\n"
     "let d = q +;\n"
     "           ^\n"
     "t.mask:6:18: error: missing ';' at the end of the statement\n"
     "mask m4 = kv <= q\n"
     "                 ^\n"),
