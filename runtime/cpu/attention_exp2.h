/* 2^x for x <= 0, the only range the online softmax needs (scores minus
 * their running maximum). Shared by the kernel tables so both compute the
 * same polynomial: x = n + f with n an integer and |f| <= 1/2, 2^f by its
 * degree-7 Taylor polynomial (relative error below 5e-9 before float32
 * rounding), 2^n by building the exponent bits. Results below 2^-126 are
 * returned as exactly 0: they are under 2^-126 times the row's largest
 * weight (which is 1), far below float32 resolution of the sum, and it keeps
 * excluded positions (t = -inf) at exactly zero. */
#ifndef FM_RUNTIME_ATTENTION_EXP2_H
#define FM_RUNTIME_ATTENTION_EXP2_H

#define FMR_EXP2_C1 0.693147180559945309f
#define FMR_EXP2_C2 0.240226506959100712f
#define FMR_EXP2_C3 0.0555041086648215800f
#define FMR_EXP2_C4 0.00961812910762847716f
#define FMR_EXP2_C5 0.00133335581464284434f
#define FMR_EXP2_C6 0.000154035303933816100f
#define FMR_EXP2_C7 0.0000152527338040598403f
/* Below this the result is flushed to 0 (see above). */
#define FMR_EXP2_MIN (-126.0f)

#endif
