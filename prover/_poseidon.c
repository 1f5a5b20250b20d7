/* Native Poseidon over the BN254 scalar field, bit-compatible with circomlib.
 *
 * A mirror of the optimised schedule in poseidon.py (which stays the reference): full rounds
 * mixed with M, one mix with P, sparse partial rounds with S, full rounds again, output s[0]
 * of the last mix. No Poseidon constant lives here: poseidon.py hands each width's C, S, M, P
 * and partial-round count to set_params() once, and checks this module against the Python
 * code before using it.
 *
 * Field elements are 4 little-endian 64-bit limbs in Montgomery form (x * 2^256 mod p).
 * Python sees them only as 32-byte little-endian canonical values.
 *
 * The field arithmetic exists twice, with the same contracts: portable C (unsigned __int128),
 * and on x86-64 inline assembly with the BMI2 and ADX instructions (mulx, adcx, adox: two
 * carry chains at once), about 2x faster there. The assembly is used when the CPU has both
 * extensions (checked once at import); POSEIDON_PORTABLE defined at compile time leaves it
 * out. The module's IMPL string says which one runs.
 *
 * Speed comes from: the assembly; a dedicated squaring; lazy reduction (values stay below 2p
 * or p instead of canonical, see "Lazy reduction" below, so that most subtractions of p go);
 * sums of products reduced once (a mix row costs one reduction, not t); and two hashes
 * computed side by side (LANES) so that their long dependency chains overlap. On Zen 4 the
 * x86-64 path runs at about 1.6 cycles per 64-bit multiplication, near the multiplier's
 * throughput: a further gain would need fewer multiplications, not fewer instructions.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned long long u64;
typedef unsigned __int128 u128;
typedef struct {
    u64 v[4];
} fe;

/* Add and subtract with carry, for the 4-word additions and subtractions. On x86-64 the
 * intrinsics become plain add/adc chains, where gcc's __int128 form spills registers (about
 * 10% of a wide hash); elsewhere, the portable form. */
#if defined(__x86_64__)
#include <x86intrin.h>
#define ADDC(c, a, b, out) _addcarry_u64((c), (a), (b), (out))
#define SUBB(c, a, b, out) _subborrow_u64((c), (a), (b), (out))
#else
static inline unsigned char ADDC(unsigned char c, u64 a, u64 b, u64 *out) {
    u128 s = (u128)a + b + c;
    *out = (u64)s;
    return (unsigned char)(s >> 64);
}
static inline unsigned char SUBB(unsigned char c, u64 a, u64 b, u64 *out) {
    u128 d = (u128)a - b - c;
    *out = (u64)d;
    return (unsigned char)(d >> 64) & 1;
}
#endif

/* The x86-64 assembly: gcc or clang (AT&T syntax, extended asm), not on request. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(POSEIDON_PORTABLE)
#define HAVE_ADX_ASM 1
#else
#define HAVE_ADX_ASM 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

#define MIN_T 2
#define MAX_T 17 /* circomlib: 1..16 inputs */
#define FULL_ROUNDS 8

/* p, the BN254 scalar field (circom's prime), little-endian limbs; 2p; -p^-1 mod 2^64.
 * Spelled out so that the compiler can use them directly; PyInit__poseidon recomputes 2p and
 * -p^-1 from p and refuses to load if they differ. */
#define P0 0x43e1f593f0000001ULL
#define P1 0x2833e84879b97091ULL
#define P2 0xb85045b68181585dULL
#define P3 0x30644e72e131a029ULL
#define P_INV 0xc2e1f593efffffffULL
static const fe P = {{P0, P1, P2, P3}};
static const fe TWO_P = {{0x87c3eb27e0000002ULL, 0x5067d090f372e122ULL, 0x70a08b6d0302b0baULL,
                          0x60c89ce5c2634053ULL}};
static fe r2; /* 2^512 mod p, set at import: multiplying by it enters Montgomery form */
static const fe CANON_ONE = {{1, 0, 0, 0}}; /* multiplying by it leaves Montgomery form */

/* Lazy reduction. Values are kept as integers below 2p or p, not always canonical; each
 * function below states what it needs and gives ("below" is as integers). With R = 2^256 and
 * p < 0.19 R (p / R = 0.18903...):
 *  - anything below 4p still fits 256 bits (4p < 0.76 R);
 *  - a Montgomery product is below a b / R + p. For a, b < 2p that is below
 *    4 (0.19) p + p < 1.76 p: values below 2p stay below 2p through products, with no
 *    subtraction;
 *  - a sum S of n <= 17 products of values below p is below 17 p^2, about 0.61 R^2; reduced
 *    once (S / R + p) it is below (0.19 n + 1) p <= 4.22 p.
 * The S-box input must be below 2p; the inputs of a sum of products, below p. */

/* Only for validating input: the arithmetic avoids data-dependent branches, which
 * mispredict about half the time on field elements. */
static int geq_p(const fe *a) {
    for (int i = 3; i >= 0; i--)
        if (a->v[i] != P.v[i]) return a->v[i] > P.v[i];
    return 1;
}

/* out = a - q if a >= q, else a, without branching; out may alias a. The limbs are read
 * before any is written, here and below: the compiler need not fear that the stores alias
 * the loads. */
INLINE void csub_to(fe *out, const fe *a, const fe *q) {
    u64 a0 = a->v[0], a1 = a->v[1], a2 = a->v[2], a3 = a->v[3];
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    /* sub/sbb, then cmov where no borrow. In C, gcc turns the select into SSE code whose
     * 16-byte loads of just-stored 8-byte words defeat store forwarding (an add and a
     * subtraction in a chain measured 60 cycles instead of about 10). */
    u64 d0, d1, d2, d3;
    __asm__("movq %[a0], %[d0]\n\t"
            "subq %[q0], %[d0]\n\t"
            "movq %[a1], %[d1]\n\t"
            "sbbq %[q1], %[d1]\n\t"
            "movq %[a2], %[d2]\n\t"
            "sbbq %[q2], %[d2]\n\t"
            "movq %[a3], %[d3]\n\t"
            "sbbq %[q3], %[d3]\n\t"
            "cmovaeq %[d0], %[a0]\n\t" /* no borrow (CF = 0): a >= q, take a - q */
            "cmovaeq %[d1], %[a1]\n\t"
            "cmovaeq %[d2], %[a2]\n\t"
            "cmovaeq %[d3], %[a3]\n\t"
            : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [d0] "=&r"(d0),
              [d1] "=&r"(d1), [d2] "=&r"(d2), [d3] "=&r"(d3)
            : [q0] "m"(q->v[0]), [q1] "m"(q->v[1]), [q2] "m"(q->v[2]), [q3] "m"(q->v[3])
            : "cc");
#else
    u64 d0, d1, d2, d3;
    unsigned char b = SUBB(0, a0, q->v[0], &d0);
    b = SUBB(b, a1, q->v[1], &d1);
    b = SUBB(b, a2, q->v[2], &d2);
    b = SUBB(b, a3, q->v[3], &d3);
    const u64 keep = (u64)0 - b; /* all ones when a < q: keep a */
    a0 = (a0 & keep) | (d0 & ~keep);
    a1 = (a1 & keep) | (d1 & ~keep);
    a2 = (a2 & keep) | (d2 & ~keep);
    a3 = (a3 & keep) | (d3 & ~keep);
#endif
    out->v[0] = a0;
    out->v[1] = a1;
    out->v[2] = a2;
    out->v[3] = a3;
}

/* a -= q if a >= q. */
INLINE void csub(fe *a, const fe *q) { csub_to(a, a, q); }

/* a + b without reduction; the callers keep the sum below 2^256. out may alias a or b. */
INLINE void add_raw(fe *out, const fe *a, const fe *b) {
    const u64 a0 = a->v[0], a1 = a->v[1], a2 = a->v[2], a3 = a->v[3];
    const u64 b0 = b->v[0], b1 = b->v[1], b2 = b->v[2], b3 = b->v[3];
    u64 s0, s1, s2, s3;
    unsigned char c = ADDC(0, a0, b0, &s0);
    c = ADDC(c, a1, b1, &s1);
    c = ADDC(c, a2, b2, &s2);
    (void)ADDC(c, a3, b3, &s3);
    out->v[0] = s0;
    out->v[1] = s1;
    out->v[2] = s2;
    out->v[3] = s3;
}

/* ---------------------------------------------------------------------------------------
 * Portable field arithmetic (unsigned __int128).
 * ------------------------------------------------------------------------------------- */

/* (hi, lo) = a * b + c + d: at most (2^64 - 1)^2 + 2 (2^64 - 1) = 2^128 - 1, no overflow. */
#define MAC(lo, hi, a, b, c, d)                                  \
    do {                                                         \
        const u128 mac_ = (u128)(a) * (b) + (u64)(c) + (u64)(d); \
        (lo) = (u64)mac_;                                        \
        (hi) = (u64)(mac_ >> 64);                                \
    } while (0)

/* Montgomery product a b / R mod p, below a b / R + p, by CIOS (a word of a times b, then
 * one word of reduction, four times). Needs b < R - p (b < 4p is plenty); a is any 256-bit
 * value. Why 5 words suffice: each step sets t = (t + a_i b + m p) / 2^64 with a_i, m < 2^64;
 * if t < b + p before, the sum is below 2^64 (b + p) <= 2^320, and t < b + p after. So the
 * top word (t4 + carry) never overflows. out may alias a or b. */
INLINE void mul_c(fe *out, const fe *a, const fe *b) {
    const u64 b0 = b->v[0], b1 = b->v[1], b2 = b->v[2], b3 = b->v[3];
    const u64 a0 = a->v[0], a1 = a->v[1], a2 = a->v[2], a3 = a->v[3];
    u64 t0, t1, t2, t3, t4, c, m;
#define CIOS_REDUCE()                                  \
    m = t0 * P_INV; /* t0 + m p0 = 0 mod 2^64 */       \
    MAC(t0, c, m, P0, t0, 0);                          \
    MAC(t0, c, m, P1, t1, c);                          \
    MAC(t1, c, m, P2, t2, c);                          \
    MAC(t2, c, m, P3, t3, c);                          \
    t3 = t4 + c
#define CIOS_ROW(ai)               \
    MAC(t0, c, ai, b0, t0, 0);     \
    MAC(t1, c, ai, b1, t1, c);     \
    MAC(t2, c, ai, b2, t2, c);     \
    MAC(t3, t4, ai, b3, t3, c)
    MAC(t0, c, a0, b0, 0, 0);
    MAC(t1, c, a0, b1, c, 0);
    MAC(t2, c, a0, b2, c, 0);
    MAC(t3, t4, a0, b3, c, 0);
    CIOS_REDUCE();
    CIOS_ROW(a1);
    CIOS_REDUCE();
    CIOS_ROW(a2);
    CIOS_REDUCE();
    CIOS_ROW(a3);
    CIOS_REDUCE();
#undef CIOS_ROW
#undef CIOS_REDUCE
    out->v[0] = t0;
    out->v[1] = t1;
    out->v[2] = t2;
    out->v[3] = t3;
}

/* Montgomery reduction of the 8-word T: T / R mod p, below T / R + p. Needs T < R (R - p)
 * (about 22.7 p^2), so that T + m p for any m < R fits 512 bits: no carry out of word 7. */
INLINE void redc_c(fe *out, u64 t0, u64 t1, u64 t2, u64 t3, u64 t4, u64 t5, u64 t6, u64 t7) {
    u64 m, c, hi;
    u128 w;
    /* Step i adds m p 2^(64 i), which clears word i; its carry goes into word i + 4, with
     * the carry (hi) out of the step before's top word (i + 3). */
#define REDC_STEP(ti, ti1, ti2, ti3, ti4, first)   \
    m = ti * P_INV;                                \
    MAC(ti, c, m, P0, ti, 0);                      \
    MAC(ti1, c, m, P1, ti1, c);                    \
    MAC(ti2, c, m, P2, ti2, c);                    \
    MAC(ti3, c, m, P3, ti3, c);                    \
    w = (u128)ti4 + c + (first ? 0 : hi);          \
    ti4 = (u64)w;                                  \
    hi = (u64)(w >> 64)
    REDC_STEP(t0, t1, t2, t3, t4, 1);
    REDC_STEP(t1, t2, t3, t4, t5, 0);
    REDC_STEP(t2, t3, t4, t5, t6, 0);
    REDC_STEP(t3, t4, t5, t6, t7, 0); /* hi is 0 here */
#undef REDC_STEP
    (void)hi;
    out->v[0] = t4;
    out->v[1] = t5;
    out->v[2] = t6;
    out->v[3] = t7;
}

/* Montgomery square, below a^2 / R + p; needs a^2 < R (R - p) (a < 2p is plenty). The 6
 * cross products are computed once and doubled: 10 word products instead of 16. */
INLINE void sqr_c(fe *out, const fe *a) {
    const u64 a0 = a->v[0], a1 = a->v[1], a2 = a->v[2], a3 = a->v[3];
    u64 t1, t2, t3, t4, t5, t6, t7, c;
    MAC(t1, c, a0, a1, 0, 0);
    MAC(t2, c, a0, a2, c, 0);
    MAC(t3, t4, a0, a3, c, 0);
    MAC(t3, c, a1, a2, t3, 0);
    MAC(t4, t5, a1, a3, t4, c);
    MAC(t5, t6, a2, a3, t5, 0);
    /* Doubled, the cross products stay below a^2 < 2^512: the shift loses nothing. */
    t7 = t6 >> 63;
    t6 = (t6 << 1) | (t5 >> 63);
    t5 = (t5 << 1) | (t4 >> 63);
    t4 = (t4 << 1) | (t3 >> 63);
    t3 = (t3 << 1) | (t2 >> 63);
    t2 = (t2 << 1) | (t1 >> 63);
    t1 <<= 1;
    /* Plus the squares a_i^2 at word 2i; the total is a^2 < 2^512: no carry out. */
    u64 s0, s1, s2, s3, s4, s5, s6, s7;
    MAC(s0, s1, a0, a0, 0, 0);
    MAC(s2, s3, a1, a1, 0, 0);
    MAC(s4, s5, a2, a2, 0, 0);
    MAC(s6, s7, a3, a3, 0, 0);
    unsigned char k = ADDC(0, t1, s1, &t1);
    k = ADDC(k, t2, s2, &t2);
    k = ADDC(k, t3, s3, &t3);
    k = ADDC(k, t4, s4, &t4);
    k = ADDC(k, t5, s5, &t5);
    k = ADDC(k, t6, s6, &t6);
    (void)ADDC(k, t7, s7, &t7);
    redc_c(out, s0, t1, t2, t3, t4, t5, t6, t7);
}

/* sum_k a[k] b[k] / R mod p, below S / R + p where S is the exact sum. Needs 1 <= n <= MAX_T
 * and a[k], b[k] < p (then S < 17 p^2 < R (R - p), and the result is below 4.22 p); both
 * versions rely on that. The products are summed on 8 words, then reduced once. out may
 * alias any a[k] or b[k]: it is written after the last read. */
INLINE void sop_c(fe *out, const fe *a, const fe *b, int n) {
    u64 w0 = 0, w1 = 0, w2 = 0, w3 = 0, w4 = 0, w5 = 0, w6 = 0, w7 = 0;
    for (int k = 0; k < n; k++) {
        const u64 b0 = b[k].v[0], b1 = b[k].v[1], b2 = b[k].v[2], b3 = b[k].v[3];
        u64 c, hi, ai;
        u128 x;
        /* Row i adds a_i b 2^(64 i) to words i..i+3; its carry goes into word i + 4, with
         * the carry (hi) out of the row before's top word (i + 3). The running sum stays
         * below S < 2^512, so nothing leaves word 7. */
#define SOP_ROW(i, wi, wi1, wi2, wi3, wi4, first) \
    ai = a[k].v[i];                               \
    MAC(wi, c, ai, b0, wi, 0);                    \
    MAC(wi1, c, ai, b1, wi1, c);                  \
    MAC(wi2, c, ai, b2, wi2, c);                  \
    MAC(wi3, c, ai, b3, wi3, c);                  \
    x = (u128)wi4 + c + (first ? 0 : hi);         \
    wi4 = (u64)x;                                 \
    hi = (u64)(x >> 64)
        SOP_ROW(0, w0, w1, w2, w3, w4, 1);
        SOP_ROW(1, w1, w2, w3, w4, w5, 0);
        SOP_ROW(2, w2, w3, w4, w5, w6, 0);
        SOP_ROW(3, w3, w4, w5, w6, w7, 0);
#undef SOP_ROW
        (void)hi;
    }
    redc_c(out, w0, w1, w2, w3, w4, w5, w6, w7);
}

/* ---------------------------------------------------------------------------------------
 * x86-64 BMI2 + ADX field arithmetic: the same three functions and contracts.
 *
 * mulx hi, lo, src multiplies by rdx without touching the flags; adcx adds with the carry
 * flag only, adox with the overflow flag only. A row a_i * b is then added as two carry
 * chains at once: low halves of the word products through OF, high halves through CF.
 * Every chain starts from cleared flags (xor) and ends by adding its last carry into a word
 * that the bounds prove cannot overflow, as in the C versions. Operands in AT&T order:
 * "mulxq src, lo, hi", "adcxq src, dst". The constants come from memory (mulx and imul take
 * memory operands), so the register demand stays at 10-12 of the 15 general registers.
 * ------------------------------------------------------------------------------------- */
#if HAVE_ADX_ASM
static const u64 P_INV_MEM = P_INV;
#define ASM_CONSTS \
    [p0] "m"(P.v[0]), [p1] "m"(P.v[1]), [p2] "m"(P.v[2]), [p3] "m"(P.v[3]), [pinv] "m"(P_INV_MEM)

/* One reduction step on the window t0..t4 (t0 lowest): m = t0 (-p^-1) mod 2^64, then
 * t0..t4 += m p. After it t0 is 0 (that is what m is for) and the value sits in t1..t4.
 * The final carry (CF) goes into t4: the bound says t4 then holds it. */
#define ASM_REDUCE5(t0, t1, t2, t3, t4)      \
    "movq %[" t0 "], %%rdx\n\t"              \
    "imulq %[pinv], %%rdx\n\t"               \
    "xorl %k[lo], %k[lo]\n\t"                \
    "mulxq %[p0], %[lo], %[hi]\n\t"          \
    "adcxq %[lo], %[" t0 "]\n\t"             \
    "adoxq %[hi], %[" t1 "]\n\t"             \
    "mulxq %[p1], %[lo], %[hi]\n\t"          \
    "adcxq %[lo], %[" t1 "]\n\t"             \
    "adoxq %[hi], %[" t2 "]\n\t"             \
    "mulxq %[p2], %[lo], %[hi]\n\t"          \
    "adcxq %[lo], %[" t2 "]\n\t"             \
    "adoxq %[hi], %[" t3 "]\n\t"             \
    "mulxq %[p3], %[lo], %[hi]\n\t"          \
    "adcxq %[lo], %[" t3 "]\n\t"             \
    "adoxq %[hi], %[" t4 "]\n\t"             \
    "adcxq %[" t0 "], %[" t4 "]\n\t" /* t0 = 0: adds CF */

/* t0..t3 += a[word] * b, into the fresh top word t4 (its old value is overwritten). */
#define ASM_ROW5(word, t0, t1, t2, t3, t4)   \
    "movq " word "(%[a]), %%rdx\n\t"         \
    "xorl %k[lo], %k[lo]\n\t"                \
    "mulxq 0(%[b]), %[lo], %[hi]\n\t"        \
    "adoxq %[lo], %[" t0 "]\n\t"             \
    "adcxq %[hi], %[" t1 "]\n\t"             \
    "mulxq 8(%[b]), %[lo], %[hi]\n\t"        \
    "adoxq %[lo], %[" t1 "]\n\t"             \
    "adcxq %[hi], %[" t2 "]\n\t"             \
    "mulxq 16(%[b]), %[lo], %[hi]\n\t"       \
    "adoxq %[lo], %[" t2 "]\n\t"             \
    "adcxq %[hi], %[" t3 "]\n\t"             \
    "mulxq 24(%[b]), %[lo], %[" t4 "]\n\t"   \
    "adoxq %[lo], %[" t3 "]\n\t"             \
    "movl $0, %k[lo]\n\t" /* keeps flags */  \
    "adcxq %[lo], %[" t4 "]\n\t"             \
    "adoxq %[lo], %[" t4 "]\n\t"

/* mul_c's contract and algorithm (CIOS), in registers r0..r4 that rotate by a word per
 * step. */
INLINE void mul_adx(fe *out, const fe *a, const fe *b) {
    u64 r0, r1, r2, r3, r4, lo, hi, rdx;
    __asm__(
        /* r0..r4 = a0 * b, one carry chain */
        "movq 0(%[a]), %%rdx\n\t"
        "mulxq 0(%[b]), %[r0], %[r1]\n\t"
        "mulxq 8(%[b]), %[lo], %[r2]\n\t"
        "addq %[lo], %[r1]\n\t"
        "mulxq 16(%[b]), %[lo], %[r3]\n\t"
        "adcq %[lo], %[r2]\n\t"
        "mulxq 24(%[b]), %[lo], %[r4]\n\t"
        "adcq %[lo], %[r3]\n\t"
        "adcq $0, %[r4]\n\t"
        ASM_REDUCE5("r0", "r1", "r2", "r3", "r4")
        ASM_ROW5("8", "r1", "r2", "r3", "r4", "r0")
        ASM_REDUCE5("r1", "r2", "r3", "r4", "r0")
        ASM_ROW5("16", "r2", "r3", "r4", "r0", "r1")
        ASM_REDUCE5("r2", "r3", "r4", "r0", "r1")
        ASM_ROW5("24", "r3", "r4", "r0", "r1", "r2")
        ASM_REDUCE5("r3", "r4", "r0", "r1", "r2")
        : [r0] "=&r"(r0), [r1] "=&r"(r1), [r2] "=&r"(r2), [r3] "=&r"(r3), [r4] "=&r"(r4),
          [lo] "=&r"(lo), [hi] "=&r"(hi), "=&d"(rdx)
        : [a] "r"(a->v), [b] "r"(b->v), "m"(*a), "m"(*b), ASM_CONSTS
        : "cc");
    out->v[0] = r4;
    out->v[1] = r0;
    out->v[2] = r1;
    out->v[3] = r2;
}

/* One reduction step on 8 words (sqr_c's redc_c): as ASM_REDUCE5 on t_i..t_i+4, then the
 * carry c_in (0..2, into word i + 4) from the step before; the two carries out of word
 * i + 4 (CF and OF, each 0 or 1) are left in t_i, which is 0 by then, for the next step. */
#define ASM_REDC8_STEP(ti, ti1, ti2, ti3, ti4, c_in)  \
    "movq %[" ti "], %%rdx\n\t"                       \
    "imulq %[pinv], %%rdx\n\t"                        \
    "xorl %k[lo], %k[lo]\n\t"                         \
    "mulxq %[p0], %[lo], %[hi]\n\t"                   \
    "adcxq %[lo], %[" ti "]\n\t"                      \
    "adoxq %[hi], %[" ti1 "]\n\t"                     \
    "mulxq %[p1], %[lo], %[hi]\n\t"                   \
    "adcxq %[lo], %[" ti1 "]\n\t"                     \
    "adoxq %[hi], %[" ti2 "]\n\t"                     \
    "mulxq %[p2], %[lo], %[hi]\n\t"                   \
    "adcxq %[lo], %[" ti2 "]\n\t"                     \
    "adoxq %[hi], %[" ti3 "]\n\t"                     \
    "mulxq %[p3], %[lo], %[hi]\n\t"                   \
    "adcxq %[lo], %[" ti3 "]\n\t"                     \
    "adoxq %[hi], %[" ti4 "]\n\t"                     \
    "adcxq %[" c_in "], %[" ti4 "]\n\t"               \
    "movl $0, %k[lo]\n\t"                             \
    "adcxq %[lo], %[" ti "]\n\t"                      \
    "adoxq %[lo], %[" ti "]\n\t"

/* sqr_c's contract and algorithm: cross products once, doubled, plus the squares, then the
 * reduction of the 8 words t0..t7. */
INLINE void sqr_adx(fe *out, const fe *a) {
    u64 t0, t1, t2, t3, t4, t5, t6, t7, lo, hi, rdx;
    __asm__(
        /* t1..t4 = a0 * (a1, a2, a3) */
        "movq 0(%[a]), %%rdx\n\t"
        "mulxq 8(%[a]), %[t1], %[t2]\n\t"
        "mulxq 16(%[a]), %[lo], %[t3]\n\t"
        "addq %[lo], %[t2]\n\t"
        "mulxq 24(%[a]), %[lo], %[t4]\n\t"
        "adcq %[lo], %[t3]\n\t"
        "adcq $0, %[t4]\n\t"
        /* t3..t5 += a1 * (a2, a3) (t6 a scratch word here); the partial sum stays below
         * 2^384, so nothing leaves t5 */
        "movq 8(%[a]), %%rdx\n\t"
        "mulxq 16(%[a]), %[lo], %[hi]\n\t"
        "mulxq 24(%[a]), %[t6], %[t5]\n\t"
        "addq %[lo], %[t3]\n\t"
        "adcq %[hi], %[t4]\n\t"
        "adcq $0, %[t5]\n\t"
        "addq %[t6], %[t4]\n\t"
        "adcq $0, %[t5]\n\t"
        /* t5..t6 += a2 * a3 */
        "movq 16(%[a]), %%rdx\n\t"
        "mulxq 24(%[a]), %[lo], %[t6]\n\t"
        "addq %[lo], %[t5]\n\t"
        "adcq $0, %[t6]\n\t"
        /* doubled, into t1..t7: below a^2 < 2^512 */
        "xorl %k[t7], %k[t7]\n\t"
        "addq %[t1], %[t1]\n\t"
        "adcq %[t2], %[t2]\n\t"
        "adcq %[t3], %[t3]\n\t"
        "adcq %[t4], %[t4]\n\t"
        "adcq %[t5], %[t5]\n\t"
        "adcq %[t6], %[t6]\n\t"
        "adcq %[t7], %[t7]\n\t"
        /* plus a_i^2 at word 2i (mov and mulx keep the flags); the total a^2 < 2^512 leaves
         * no carry */
        "movq 0(%[a]), %%rdx\n\t"
        "mulxq %%rdx, %[t0], %[hi]\n\t"
        "addq %[hi], %[t1]\n\t"
        "movq 8(%[a]), %%rdx\n\t"
        "mulxq %%rdx, %[lo], %[hi]\n\t"
        "adcq %[lo], %[t2]\n\t"
        "adcq %[hi], %[t3]\n\t"
        "movq 16(%[a]), %%rdx\n\t"
        "mulxq %%rdx, %[lo], %[hi]\n\t"
        "adcq %[lo], %[t4]\n\t"
        "adcq %[hi], %[t5]\n\t"
        "movq 24(%[a]), %%rdx\n\t"
        "mulxq %%rdx, %[lo], %[hi]\n\t"
        "adcq %[lo], %[t6]\n\t"
        "adcq %[hi], %[t7]\n\t"
        /* reduce: the carry into word 4 of the first step is none (t0 is 0 when read);
         * the last step's carries out of word 7 are 0 (T + m p < 2^512), left unread */
        ASM_REDC8_STEP("t0", "t1", "t2", "t3", "t4", "t0")
        ASM_REDC8_STEP("t1", "t2", "t3", "t4", "t5", "t0")
        ASM_REDC8_STEP("t2", "t3", "t4", "t5", "t6", "t1")
        ASM_REDC8_STEP("t3", "t4", "t5", "t6", "t7", "t2")
        : [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3), [t4] "=&r"(t4),
          [t5] "=&r"(t5), [t6] "=&r"(t6), [t7] "=&r"(t7), [lo] "=&r"(lo), [hi] "=&r"(hi),
          "=&d"(rdx)
        : [a] "r"(a->v), "m"(*a), ASM_CONSTS
        : "cc");
    out->v[0] = t4;
    out->v[1] = t5;
    out->v[2] = t6;
    out->v[3] = t7;
}

/* sop_c's contract, by a different algorithm that needs only 6 registers for the sum: word
 * i of every a[k] times b[k] is added to the window w0..w5 (the sum's words i..i+5), then
 * one reduction step clears word i and the window slides up a word. So the reduction is
 * interleaved as in CIOS, once per word for all n products.
 * Bounds: before the step of word i the window holds (the products of a[k]'s words 0..i,
 * plus the multiples of p added so far, divided by 2^(64 i)) below 2^64 n max(b) + p; the
 * step adds m p < 2^64 p. With n <= 17 and b[k] < p that is below 2^64 18 p + p < 2^323:
 * within the 6 words, nothing leaves w5. After the step, below 2^259: the new top word
 * starts at 0. At the end the window holds (S + M p) / R for some M < R, below S / R + p
 * < 4.22 p: the result is in its low 4 words.
 * The loop runs n >= 1 times per word (decl; jnz: n = 0 would wrap). It reads a[k] and b[k]
 * from memory, hence the "memory" clobber. */
#define ASM_SOP_WORD(word, w0, w1, w2, w3, w4, w5) \
    "movq %[a0], %[ap]\n\t"                        \
    "movq %[b0], %[bp]\n\t"                        \
    "movl %[n], %k[cnt]\n\t"                       \
    "1:\n\t"                                       \
    "movq " word "(%[ap]), %%rdx\n\t"              \
    "xorl %k[lo], %k[lo]\n\t"                      \
    "mulxq 0(%[bp]), %[lo], %[hi]\n\t"             \
    "adoxq %[lo], %[" w0 "]\n\t"                   \
    "adcxq %[hi], %[" w1 "]\n\t"                   \
    "mulxq 8(%[bp]), %[lo], %[hi]\n\t"             \
    "adoxq %[lo], %[" w1 "]\n\t"                   \
    "adcxq %[hi], %[" w2 "]\n\t"                   \
    "mulxq 16(%[bp]), %[lo], %[hi]\n\t"            \
    "adoxq %[lo], %[" w2 "]\n\t"                   \
    "adcxq %[hi], %[" w3 "]\n\t"                   \
    "mulxq 24(%[bp]), %[lo], %[hi]\n\t"            \
    "adoxq %[lo], %[" w3 "]\n\t"                   \
    "adcxq %[hi], %[" w4 "]\n\t"                   \
    "movl $0, %k[lo]\n\t"                          \
    "adoxq %[lo], %[" w4 "]\n\t"                   \
    "adcxq %[lo], %[" w5 "]\n\t"                   \
    "adoxq %[lo], %[" w5 "]\n\t"                   \
    "addq $32, %[ap]\n\t"                          \
    "addq $32, %[bp]\n\t"                          \
    "decl %k[cnt]\n\t"                             \
    "jnz 1b\n\t"                                   \
    "movq %[" w0 "], %%rdx\n\t"                    \
    "imulq %[pinv], %%rdx\n\t"                     \
    "xorl %k[lo], %k[lo]\n\t"                      \
    "mulxq %[p0], %[lo], %[hi]\n\t"                \
    "adcxq %[lo], %[" w0 "]\n\t" /* w0 = 0 */      \
    "adoxq %[hi], %[" w1 "]\n\t"                   \
    "mulxq %[p1], %[lo], %[hi]\n\t"                \
    "adcxq %[lo], %[" w1 "]\n\t"                   \
    "adoxq %[hi], %[" w2 "]\n\t"                   \
    "mulxq %[p2], %[lo], %[hi]\n\t"                \
    "adcxq %[lo], %[" w2 "]\n\t"                   \
    "adoxq %[hi], %[" w3 "]\n\t"                   \
    "mulxq %[p3], %[lo], %[hi]\n\t"                \
    "adcxq %[lo], %[" w3 "]\n\t"                   \
    "adoxq %[hi], %[" w4 "]\n\t"                   \
    "adcxq %[" w0 "], %[" w4 "]\n\t"               \
    "adoxq %[" w0 "], %[" w5 "]\n\t"               \
    "adcxq %[" w0 "], %[" w5 "]\n\t"

INLINE void sop_adx(fe *out, const fe *a, const fe *b, int n) {
    u64 u0, u1, u2, u3, u4, u5, lo, hi, rdx;
    const fe *ap, *bp;
    unsigned cnt;
    const unsigned n_ = (unsigned)n; /* 1..MAX_T: every caller passes t >= 2 */
    const fe *const a0 = a, *const b0 = b;
    __asm__(
        "xorl %k[u0], %k[u0]\n\t"
        "xorl %k[u1], %k[u1]\n\t"
        "xorl %k[u2], %k[u2]\n\t"
        "xorl %k[u3], %k[u3]\n\t"
        "xorl %k[u4], %k[u4]\n\t"
        "xorl %k[u5], %k[u5]\n\t"
        ASM_SOP_WORD("0", "u0", "u1", "u2", "u3", "u4", "u5")
        ASM_SOP_WORD("8", "u1", "u2", "u3", "u4", "u5", "u0")
        ASM_SOP_WORD("16", "u2", "u3", "u4", "u5", "u0", "u1")
        ASM_SOP_WORD("24", "u3", "u4", "u5", "u0", "u1", "u2")
        : [u0] "=&r"(u0), [u1] "=&r"(u1), [u2] "=&r"(u2), [u3] "=&r"(u3), [u4] "=&r"(u4),
          [u5] "=&r"(u5), [lo] "=&r"(lo), [hi] "=&r"(hi), "=&d"(rdx), [ap] "=&r"(ap),
          [bp] "=&r"(bp), [cnt] "=&r"(cnt)
        : [a0] "m"(a0), [b0] "m"(b0), [n] "m"(n_), ASM_CONSTS
        : "cc", "memory");
    out->v[0] = u4;
    out->v[1] = u5;
    out->v[2] = u0;
    out->v[3] = u1;
}
#endif /* HAVE_ADX_ASM */

/* ---------------------------------------------------------------------------------------
 * Poseidon, written once over both arithmetics: `adx` is a constant in each instance
 * (hash_rows_portable, hash_rows_adx), so the branches below fold away.
 * ------------------------------------------------------------------------------------- */

INLINE void fe_mul(fe *out, const fe *a, const fe *b, const int adx) {
#if HAVE_ADX_ASM
    if (adx) {
        mul_adx(out, a, b);
        return;
    }
#endif
    (void)adx;
    mul_c(out, a, b);
}

INLINE void fe_sqr(fe *out, const fe *a, const int adx) {
#if HAVE_ADX_ASM
    if (adx) {
        sqr_adx(out, a);
        return;
    }
#endif
    (void)adx;
    sqr_c(out, a);
}

INLINE void fe_sop(fe *out, const fe *a, const fe *b, int n, const int adx) {
#if HAVE_ADX_ASM
    if (adx) {
        sop_adx(out, a, b, n);
        return;
    }
#endif
    (void)adx;
    sop_c(out, a, b, n);
}

/* Parameters of one state width t, all in Montgomery form, canonical. */
typedef struct {
    int t, rounds_p;
    fe *c;  /* FULL_ROUNDS * t + rounds_p round constants, in the order poseidon.py reads them */
    fe *s;  /* rounds_p rows of 2t - 1 sparse-matrix entries */
    fe *mt; /* M transposed, mt[i * t + j] = M[j][i]: row i of a mix is then one fe_sop() */
    fe *pt; /* P transposed likewise */
} params;

/* Set once per width and never freed: hash_many reads them with the GIL released. */
static params *by_width[MAX_T + 1];

/* Hashes computed side by side ("lanes"). A Montgomery product is a long dependency chain
 * (carries, then each reduction word waits on the one before): in a chain of products each
 * takes about 1.5 times as long as when independent ones overlap it, and the partial rounds
 * are such a chain. Each step below runs for lanes 0..L-1 in turn (L <= LANES, a constant in
 * each instance, so the loops unroll), so that the CPU overlaps the lanes' products.
 * Measured on Zen 4: 2 lanes hash 7-14% faster than 1 at 1..4 inputs, 1-2% at 8..16; 3 or 4
 * lanes were no faster than 2. Stack: 5 arrays of LANES * MAX_T elements, under 6 KB. */
#define LANES 2

/* The S-box plus round constants on every element: x^5 + c, canonical, for x < 2p and c < p.
 * x^2, x^4 and x^5 are products of values below 2p, so below 2p; minus p where it fits:
 * below p; plus c: below 2p; minus p: below p. */
INLINE void sbox_all(fe (*s)[MAX_T], const fe *c, int t, const int L, const int adx) {
    fe x2[LANES][MAX_T], x4[LANES][MAX_T];
    for (int l = 0; l < L; l++)
        for (int i = 0; i < t; i++) fe_sqr(&x2[l][i], &s[l][i], adx);
    for (int l = 0; l < L; l++)
        for (int i = 0; i < t; i++) fe_sqr(&x4[l][i], &x2[l][i], adx);
    for (int l = 0; l < L; l++)
        for (int i = 0; i < t; i++) {
            fe_mul(&s[l][i], &x4[l][i], &s[l][i], adx);
            csub(&s[l][i], &P);
            if (c != NULL) {
                add_raw(&s[l][i], &s[l][i], &c[i]);
                csub(&s[l][i], &P);
            }
        }
}

/* The mix with a transposed matrix, out[i] = sum_j M[j][i] in[j], for in[j] < p. The
 * reduced sum of t <= 17 products of values below p is below (0.19 t + 1) p < 4.22 p; minus
 * 2p, then minus p, where they fit: below 1.22 p < 2p. */
INLINE void mix(fe (*out)[MAX_T], fe (*in)[MAX_T], const fe *mt, int t, const int L,
                const int adx) {
    for (int l = 0; l < L; l++)
        for (int i = 0; i < t; i++) {
            fe_sop(&out[l][i], mt + i * t, in[l], t, adx);
            csub(&out[l][i], &TWO_P);
            csub(&out[l][i], &P);
        }
}

/* Poseidon of L states s[l][1..t-1] (s[l][0] = 0; Montgomery form, canonical); s and tmp
 * are clobbered. out[l] is below 2p. */
INLINE void permute(const params *prm, fe (*s)[MAX_T], fe (*tmp)[MAX_T], fe *out, const int L,
                    const int adx) {
    const int t = prm->t, half = FULL_ROUNDS / 2, width = 2 * t - 1;
    const fe *c = prm->c;
    fe(*cur)[MAX_T] = s, (*next)[MAX_T] = tmp, (*swap)[MAX_T];
#define SWAP_STATE() (swap = cur, cur = next, next = swap)

    for (int l = 0; l < L; l++)
        for (int i = 0; i < t; i++) add_raw(&cur[l][i], &cur[l][i], &c[i]); /* below 2p */
    c += t;
    /* Full rounds: in and out, every element below 2p. */
    for (int r = 0; r < half; r++, c += t) {
        sbox_all(cur, c, t, L, adx);
        mix(next, cur, r < half - 1 ? prm->mt : prm->pt, t, L, adx);
        SWAP_STATE();
    }

    /* Partial rounds: S-box on s[0] only, then the sparse matrix of row r:
     * s0' = row[0..t) . (s0, s1, ...), sk' = sk + s0 row[t + k - 1].
     * In and out: s[0] < 2p (the S-box input), s[k] < p for k >= 1 (fe_sop() inputs). */
    for (int l = 0; l < L; l++)
        for (int k = 1; k < t; k++) csub(&cur[l][k], &P); /* below 1.22 p after the mix */
    for (int r = 0; r < prm->rounds_p; r++) {
        const fe *row = prm->s + (size_t)r * width;
        fe x2[LANES], x4[LANES], s0[LANES];
        for (int l = 0; l < L; l++) fe_sqr(&x2[l], &cur[l][0], adx);
        for (int l = 0; l < L; l++) fe_sqr(&x4[l], &x2[l], adx);
        for (int l = 0; l < L; l++) {
            /* x^5 + c, canonical: as in sbox_all */
            fe_mul(&cur[l][0], &x4[l], &cur[l][0], adx);
            csub(&cur[l][0], &P);
            add_raw(&cur[l][0], &cur[l][0], &c[r]);
            csub(&cur[l][0], &P);
        }
        for (int l = 0; l < L; l++) fe_sop(&s0[l], row, cur[l], t, adx);
        for (int k = 1; k < t; k++)
            for (int l = 0; l < L; l++) {
                /* (x^5 + c) row < p^2 / R + p < 1.19 p; plus sk < p: below 2.19 p; minus p
                 * twice where it fits: below p. */
                fe prod;
                fe_mul(&prod, &cur[l][0], &row[t + k - 1], adx);
                add_raw(&cur[l][k], &cur[l][k], &prod);
                csub(&cur[l][k], &P);
                csub(&cur[l][k], &P);
            }
        /* s0' < 4.22 p, as a mix row: minus 2p, then p, where they fit: below 2p. */
        for (int l = 0; l < L; l++) {
            csub_to(&cur[l][0], &s0[l], &TWO_P);
            csub(&cur[l][0], &P);
        }
    }
    c += prm->rounds_p;

    for (int r = 0; r < half - 1; r++, c += t) {
        sbox_all(cur, c, t, L, adx);
        mix(next, cur, prm->mt, t, L, adx);
        SWAP_STATE();
    }
    /* Last round: the S-box without constants, and only s[0] of the mix (row 0 of mt). */
    sbox_all(cur, NULL, t, L, adx);
    for (int l = 0; l < L; l++) {
        fe_sop(&out[l], prm->mt, cur[l], t, adx);
        csub(&out[l], &TWO_P);
        csub(&out[l], &P);
    }
#undef SWAP_STATE
}

static void load(fe *x, const unsigned char *b) {
    for (int i = 0; i < 4; i++) {
        u64 w = 0;
        for (int k = 7; k >= 0; k--) w = (w << 8) | b[8 * i + k];
        x->v[i] = w;
    }
}

static void store(unsigned char *b, const fe *x) {
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 8; k++) b[8 * i + k] = (unsigned char)(x->v[i] >> (8 * k));
}

/* Index of the first of count rows of n 32-byte values holding one not below p, or -1. */
static Py_ssize_t first_bad_row(const unsigned char *src, Py_ssize_t count, int n) {
    for (Py_ssize_t k = 0; k < count; k++)
        for (int i = 0; i < n; i++) {
            fe x;
            load(&x, src + 32 * (k * n + i));
            if (geq_p(&x)) return k;
        }
    return -1;
}

/* Hash L rows of t - 1 canonical values (checked by first_bad_row) from src to dst. */
INLINE void hash_lanes(const params *prm, const unsigned char *src, unsigned char *dst,
                       const int L, const int adx) {
    const int t = prm->t;
    fe s[LANES][MAX_T], tmp[LANES][MAX_T], h[LANES];
    for (int l = 0; l < L; l++) {
        s[l][0] = (fe){{0, 0, 0, 0}};
        for (int i = 1; i < t; i++) {
            load(&s[l][i], src + 32 * ((Py_ssize_t)l * (t - 1) + i - 1));
            /* x r2 / R = x R mod p, below p r2 / R + p < 1.19 p; minus p: canonical. */
            fe_mul(&s[l][i], &s[l][i], &r2, adx);
            csub(&s[l][i], &P);
        }
    }
    permute(prm, s, tmp, h, L, adx);
    for (int l = 0; l < L; l++) {
        /* h / R mod p is below h / R + p < p + 1: minus p where it fits makes it
         * canonical. */
        fe_mul(&h[l], &h[l], &CANON_ONE, adx);
        csub(&h[l], &P);
        store(dst + 32 * l, &h[l]);
    }
}

/* Hash count rows of t - 1 canonical values (checked) from src into dst, 32 bytes each: in
 * groups of LANES, the rest one by one. Touches no Python object: runs with the GIL
 * released. */
INLINE void hash_rows_impl(const params *prm, const unsigned char *src, unsigned char *dst,
                           Py_ssize_t count, const int adx) {
    const Py_ssize_t row = 32 * (Py_ssize_t)(prm->t - 1);
    Py_ssize_t k = 0;
    for (; count - k >= LANES; k += LANES) hash_lanes(prm, src + k * row, dst + 32 * k, LANES, adx);
    for (; k < count; k++) hash_lanes(prm, src + k * row, dst + 32 * k, 1, adx);
}

typedef void (*hash_rows_fn)(const params *, const unsigned char *, unsigned char *, Py_ssize_t);

static void hash_rows_portable(const params *prm, const unsigned char *src, unsigned char *dst,
                               Py_ssize_t count) {
    hash_rows_impl(prm, src, dst, count, 0);
}

#if HAVE_ADX_ASM
static void hash_rows_adx(const params *prm, const unsigned char *src, unsigned char *dst,
                          Py_ssize_t count) {
    hash_rows_impl(prm, src, dst, count, 1);
}

#include <cpuid.h>
/* BMI2 (mulx) and ADX (adcx, adox): CPUID leaf 7, EBX bits 8 and 19. Plain user-mode
 * integer instructions: no operating-system support to check. */
static int cpu_has_bmi2_adx(void) {
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    (void)a, (void)c, (void)d;
    return (b >> 8 & 1) && (b >> 19 & 1);
}
#endif

/* Chosen once at import, before any hash can run. */
static hash_rows_fn hash_rows = hash_rows_portable;
static const char *impl_name = "portable C";

/* Read n canonical values into Montgomery form, canonical; -1 if one is not below p.
 * Only for set_params: the hashes convert their inputs in hash_rows_impl. */
static int load_mont(fe *out, const unsigned char *b, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        load(&out[i], b + 32 * i);
        if (geq_p(&out[i])) return -1;
        mul_c(&out[i], &out[i], &r2);
        csub(&out[i], &P);
    }
    return 0;
}

static int check_width(int t) {
    if (t < MIN_T || t > MAX_T) {
        PyErr_Format(PyExc_ValueError, "state width t must be %d..%d, got %d", MIN_T, MAX_T, t);
        return -1;
    }
    return 0;
}

/* Convert one buffer of n canonical values into dst; ValueError if its size is wrong. */
static int take(fe *dst, const Py_buffer *buf, Py_ssize_t n, const char *what) {
    if (buf->len != 32 * n) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd bytes, got %zd", what, 32 * n, buf->len);
        return -1;
    }
    if (load_mont(dst, buf->buf, n) < 0) {
        PyErr_Format(PyExc_ValueError, "%s: a value is not below p", what);
        return -1;
    }
    return 0;
}

static PyObject *set_params(PyObject *self, PyObject *args) {
    int t, rounds_p;
    Py_buffer bc, bs, bm, bp;
    if (!PyArg_ParseTuple(args, "iiy*y*y*y*:set_params", &t, &rounds_p, &bc, &bs, &bm, &bp))
        return NULL;
    params *prm = NULL;
    fe *rows = NULL; /* M and P as given (row-major), before transposing */
    PyObject *result = NULL;
    Py_ssize_t nc = 0, ns = 0, nm = 0;
    if (check_width(t) < 0) goto done;
    if (rounds_p < 1 || rounds_p > 128) {
        PyErr_Format(PyExc_ValueError, "implausible partial-round count %d", rounds_p);
        goto done;
    }
    nc = FULL_ROUNDS * t + rounds_p;
    ns = (Py_ssize_t)rounds_p * (2 * t - 1);
    nm = (Py_ssize_t)t * t;
    /* One block: the header, then mt, pt, c and s back to back. */
    prm = PyMem_RawMalloc(sizeof(params) + (2 * nm + nc + ns) * sizeof(fe));
    rows = PyMem_RawMalloc(2 * nm * sizeof(fe));
    if (prm == NULL || rows == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    prm->t = t;
    prm->rounds_p = rounds_p;
    prm->mt = (fe *)(prm + 1);
    prm->pt = prm->mt + nm;
    prm->c = prm->pt + nm;
    prm->s = prm->c + nc;
    if (take(prm->c, &bc, nc, "C") < 0 || take(prm->s, &bs, ns, "S") < 0 ||
        take(rows, &bm, nm, "M") < 0 || take(rows + nm, &bp, nm, "P") < 0)
        goto done;
    for (int i = 0; i < t; i++)
        for (int j = 0; j < t; j++) {
            prm->mt[i * t + j] = rows[j * t + i];
            prm->pt[i * t + j] = rows[nm + j * t + i];
        }

    /* A hash in another thread may be reading the current set: it is never replaced.
     * Setting equal parameters again is a no-op, different ones an error. */
    const params *old = by_width[t];
    if (old == NULL) {
        by_width[t] = prm;
        prm = NULL;
    } else if (old->rounds_p != rounds_p ||
               memcmp(old->mt, prm->mt, (2 * nm + nc + ns) * sizeof(fe)) != 0) {
        PyErr_Format(PyExc_ValueError, "different parameters for t=%d are already set", t);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_RawFree(prm);
    PyMem_RawFree(rows);
    PyBuffer_Release(&bc);
    PyBuffer_Release(&bs);
    PyBuffer_Release(&bm);
    PyBuffer_Release(&bp);
    return result;
}

static PyObject *hash_many(PyObject *self, PyObject *args) {
    int t;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "iy*:hash_many", &t, &data)) return NULL;
    PyObject *out = NULL;
    if (check_width(t) < 0) goto done;
    const params *prm = by_width[t];
    if (prm == NULL) {
        PyErr_Format(PyExc_RuntimeError, "no parameters set for t=%d", t);
        goto done;
    }
    const Py_ssize_t row = 32 * (Py_ssize_t)(t - 1);
    if (data.len % row != 0) {
        PyErr_Format(PyExc_ValueError, "data is %zd bytes, not a multiple of %zd (t=%d)",
                     data.len, row, t);
        goto done;
    }
    const Py_ssize_t count = data.len / row;
    out = PyBytes_FromStringAndSize(NULL, 32 * count);
    if (out == NULL) goto done;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
    const unsigned char *src = data.buf;
    Py_ssize_t bad;

    /* Nothing here touches Python objects: `out` is not shared yet, `data` is held. */
    Py_BEGIN_ALLOW_THREADS
    bad = first_bad_row(src, count, t - 1);
    if (bad < 0) hash_rows(prm, src, dst, count);
    Py_END_ALLOW_THREADS

    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "row %zd holds a value that is not below p", bad);
        Py_CLEAR(out);
    }
done:
    PyBuffer_Release(&data);
    return out;
}

static PyMethodDef methods[] = {
    {"set_params", set_params, METH_VARARGS,
     "set_params(t, rounds_p, C, S, M, P): the constants of state width t, each a run of "
     "32-byte little-endian canonical values (M and P row-major). Once per width."},
    {"hash_many", hash_many, METH_VARARGS,
     "hash_many(t, data) -> bytes: Poseidon of each run of t - 1 32-byte little-endian "
     "canonical values in data, 32 bytes each. Releases the GIL."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_poseidon",
    .m_doc = "Native Poseidon (BN254, circomlib-compatible); use it through poseidon.py.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__poseidon(void) {
    /* Check the spelled-out constants against p. -p^-1 mod 2^64 by Newton's iteration: each
     * step doubles the correct low bits. */
    u64 inv = 1;
    for (int i = 0; i < 6; i++) inv *= 2 - P.v[0] * inv;
    fe two_p;
    add_raw(&two_p, &P, &P);
    if ((u64)0 - inv != P_INV || memcmp(&two_p, &TWO_P, sizeof two_p) != 0) {
        PyErr_SetString(PyExc_ImportError, "_poseidon: inconsistent field constants");
        return NULL;
    }
    /* 2^512 mod p by doubling 1 512 times (x < p: x + x < 2p fits, and minus p where it
     * fits makes it canonical again). */
    fe x = {{1, 0, 0, 0}};
    for (int i = 0; i < 512; i++) {
        add_raw(&x, &x, &x);
        csub(&x, &P);
    }
    r2 = x;
#if HAVE_ADX_ASM
    /* ZKSOLVENCY_POSEIDON_PORTABLE=1 keeps the portable C, so that the test suite checks it
     * on machines that would otherwise always run the assembly. */
    const char *portable = getenv("ZKSOLVENCY_POSEIDON_PORTABLE");
    if (cpu_has_bmi2_adx() && !(portable != NULL && portable[0] != '\0')) {
        hash_rows = hash_rows_adx;
        impl_name = "x86-64 BMI2+ADX";
    }
#endif
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddStringConstant(m, "IMPL", impl_name) < 0) Py_CLEAR(m);
    return m;
}
