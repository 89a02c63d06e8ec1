/* Optional accelerator: JSON numbers -> float32, without Python floats.
 *
 * Two entry points. parse_float32_array() reads one vector's JSON text (a field's msgspec.Raw)
 * into float32 bytes. extract_vectors() reads every vector of a whole task body in one pass and
 * returns the body with each vector replaced by its index (see the section at the end). Both
 * must give exactly what the pure-Python path gives: msgspec's correctly rounded double for each
 * number, then rounded to float32 (IEEE round-to-nearest-even), with the same numbers refused.
 * Every number takes one of three roads:
 *
 *   quick:   `-?D.D` followed by ',' (the shape of real vectors) is read 8 bytes at a time;
 *            with at most 53 bits of digits, one division by an exact power of ten gives the
 *            correctly rounded double (Clinger's fast path).
 *   careful: any other number whose digits fit in 64 bits and whose power of ten is within
 *            +-44: the double is computed with a few roundings and used only when no float32
 *            rounding boundary lies within 64 double ulps of it, so it rounds to the same
 *            float32 as the correctly rounded double would.
 *   slow:    anything else (long digit strings, extreme exponents, near a rounding boundary,
 *            the float32 subnormal range) goes to CPython's correctly rounded
 *            PyOS_string_to_double.
 *
 * The input is untrusted. No read leaves the buffer: every scan stops on the buffer's closing
 * ']' or '}', and each 8-byte load first checks its room. Any byte sequence gives a result,
 * ValueError or None, never a crash (the tests fuzz both entry points; they also pass under
 * AddressSanitizer and UndefinedBehaviorSanitizer).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static const double POW10[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* The doubles nearest to 1e-0 .. 1e-22 (only 1e-0 is exact). */
static const double NEG_POW10[23] = {
    1e-0,  1e-1,  1e-2,  1e-3,  1e-4,  1e-5,  1e-6,  1e-7,  1e-8,  1e-9,  1e-10, 1e-11,
    1e-12, 1e-13, 1e-14, 1e-15, 1e-16, 1e-17, 1e-18, 1e-19, 1e-20, 1e-21, 1e-22,
};

#define TWO_POW_53 9007199254740992ULL
/* Slack, in double ulps, kept between an approximate double and a float32 rounding boundary. */
#define BOUNDARY_SLACK 64
/* Longest number handed to PyOS_string_to_double from the stack; longer ones are copied to the
 * heap. */
#define STACK_NUMBER 128

typedef enum { NUMBER_OK, NUMBER_BAD, NUMBER_RANGE, NUMBER_ERROR } number_status;

static inline int
is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* 1 when `d` (a finite, normal double in float32's normal range) is far enough from every
 * float32 rounding boundary that any double within BOUNDARY_SLACK ulps of it rounds to the
 * same float32. A double has 52 fraction bits, float32 23: the low 29 bits are the offset
 * from the float32 grid point below, and 1 << 28 is the midpoint (the only place where
 * rounding changes its mind). */
static inline int
clear_of_boundary(double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    int64_t offset = (int64_t)(bits & 0x1FFFFFFFULL) - (int64_t)0x10000000;
    return offset > BOUNDARY_SLACK || offset < -BOUNDARY_SLACK;
}

/* The correctly rounded double of the number text [start, end), then rounded to float32. */
static number_status
slow_number(const char *start, const char *end, float *out)
{
    char stack[STACK_NUMBER + 1];
    Py_ssize_t len = end - start;
    char *buf = stack;
    if (len > STACK_NUMBER) {
        buf = PyMem_Malloc((size_t)len + 1);
        if (buf == NULL) {
            PyErr_NoMemory();
            return NUMBER_ERROR;
        }
    }
    memcpy(buf, start, (size_t)len);
    buf[len] = '\0';
    char *stop = NULL;
    /* overflow_exception=NULL: an overflow returns +-inf instead of raising. */
    double d = PyOS_string_to_double(buf, &stop, NULL);
    int consumed_all = stop == buf + len;
    if (buf != stack) {
        PyMem_Free(buf);
    }
    if (d == -1.0 && PyErr_Occurred()) {
        return NUMBER_ERROR;
    }
    if (!consumed_all) {
        return NUMBER_BAD;
    }
    if (isinf(d)) {
        return NUMBER_RANGE; /* beyond double: msgspec calls it out of range too */
    }
    float f = (float)d;
    if (isinf(f)) {
        return NUMBER_RANGE;
    }
    *out = f;
    return NUMBER_OK;
}

/* mantissa * 10**exponent (the number text [start, end)) as float32, via the correctly rounded
 * double. */
static inline number_status
to_float32(uint64_t mantissa, int64_t exponent, int negative, int is_integer,
           const char *start, const char *end, float *out)
{
    if (mantissa == 0) {
        /* msgspec decodes the integer -0 as int 0, hence +0.0; -0.0 and -0e0 keep the sign */
        *out = (negative && !is_integer) ? -0.0f : 0.0f;
        return NUMBER_OK;
    }
    if (exponent >= -44 && exponent <= 44) {
        /* Multiplying by 1e-k (itself rounded) instead of dividing by 1e+k costs a few ulps,
         * which the boundary check absorbs, and saves a division per number. */
        double d = (double)mantissa;
        if (exponent < 0) {
            int64_t k = -exponent;
            if (k > 22) {
                d *= NEG_POW10[22];
                k -= 22;
            }
            d *= NEG_POW10[k];
        }
        else if (exponent > 0) {
            int64_t k = exponent;
            if (k > 22) {
                d *= POW10[22];
                k -= 22;
            }
            d *= POW10[k];
        }
        double magnitude = fabs(d);
        if (magnitude >= (double)FLT_MIN * 2 && magnitude <= (double)FLT_MAX / 2 &&
            clear_of_boundary(d)) {
            float f = (float)d;
            *out = negative ? -f : f;
            return NUMBER_OK;
        }
        if (mantissa <= TWO_POW_53 && exponent >= -22 && exponent <= 22) {
            /* Clinger: a single correct rounding gives the correctly rounded double. */
            d = (double)mantissa;
            d = exponent < 0 ? d / POW10[-exponent] : d * POW10[exponent];
            float f = (float)d;
            if (isinf(f)) {
                return NUMBER_RANGE;
            }
            *out = negative ? -f : f;
            return NUMBER_OK;
        }
    }
    return slow_number(start, end, out);
}

/* Accumulate the n digits at s (all known to be digits) into *mantissa. */
static inline uint64_t
accumulate(uint64_t mantissa, const char *s, Py_ssize_t n)
{
#if PY_LITTLE_ENDIAN
    while (n >= 4) {
        /* Four digits at once: after subtracting '0' from each byte, pairs combine into bytes
         * 0 and 2 (v * 10 + (v >> 8)), then into one 0..9999 value in bits 16..31. */
        uint32_t v;
        memcpy(&v, s, 4);
        v -= 0x30303030u;
        v = v * 10 + (v >> 8);
        v = (((v & 0x00FF00FFu) * ((100u << 16) + 1u)) >> 16) & 0xFFFFu;
        mantissa = mantissa * 10000 + v;
        s += 4;
        n -= 4;
    }
#endif
    for (; n > 0; n--, s++) {
        mantissa = mantissa * 10 + (uint64_t)(*s - '0');
    }
    return mantissa;
}

/* Parse one JSON number at *pos, any shape. The caller guarantees that the buffer's last byte is
 * ']', which stops every scan below, so no read passes the end. On NUMBER_OK, *pos is past the
 * number. */
static number_status
parse_number_careful(const char **pos, float *out)
{
    const char *start = *pos;
    const char *p = start;
    int negative = *p == '-';
    uint64_t mantissa = 0;
    Py_ssize_t digits = 0;   /* significant digits in mantissa (at most 19: fits 64 bits) */
    Py_ssize_t dropped = 0;  /* significant digits beyond those (then: the slow road) */
    int64_t exponent = 0;    /* power of ten applied to mantissa */
    int is_integer = 1;

    p += negative;
    if (!is_digit(*p)) {
        return NUMBER_BAD;
    }
    if (*p == '0') {
        p++;
        if (is_digit(*p)) {
            return NUMBER_BAD; /* JSON forbids leading zeros */
        }
    }
    else {
        const char *run = p;
        while (is_digit(*p)) p++;
        Py_ssize_t n = p - run;
        digits = n < 19 ? n : 19;
        mantissa = accumulate(0, run, digits);
        dropped = n - digits;
        exponent += dropped;
    }
    if (*p == '.') {
        is_integer = 0;
        p++;
        if (!is_digit(*p)) {
            return NUMBER_BAD;
        }
        if (mantissa == 0) {
            const char *zeros = p;
            while (*p == '0') p++;
            exponent -= p - zeros; /* leading zeros of the fraction only scale */
        }
        const char *run = p;
        while (is_digit(*p)) p++;
        Py_ssize_t n = p - run;
        Py_ssize_t take = n < 19 - digits ? n : 19 - digits;
        mantissa = accumulate(mantissa, run, take);
        digits += take;
        exponent -= take;
        dropped += n - take;
    }
    if (*p == 'e' || *p == 'E') {
        is_integer = 0;
        p++;
        int exp_negative = *p == '-';
        if (*p == '+' || *p == '-') {
            p++;
        }
        if (!is_digit(*p)) {
            return NUMBER_BAD;
        }
        int64_t written = 0;
        for (; is_digit(*p); p++) {
            if (written < 100000) { /* far beyond any double; stop growing */
                written = written * 10 + (*p - '0');
            }
        }
        exponent += exp_negative ? -written : written;
    }
    *pos = p;

    if (dropped != 0) {
        return slow_number(start, p, out);
    }
    return to_float32(mantissa, exponent, negative, is_integer, start, p, out);
}

#if PY_LITTLE_ENDIAN && (defined(__GNUC__) || defined(__clang__))
#define HAVE_SWAR 1

static inline uint64_t
load8(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* How many of the 8 bytes in `chunk` (first byte lowest) are digits before the first byte that
 * is not. A byte x is a digit when its high nibble is 3 both for x and x + 6; a carry out of a
 * byte can only disturb the bytes after it, which are past the first non-digit anyway. */
static inline int
leading_digits(uint64_t chunk)
{
    const uint64_t high = 0xF0F0F0F0F0F0F0F0ULL, threes = 0x3030303030303030ULL;
    uint64_t not_digit =
        ((chunk & high) ^ threes) | (((chunk + 0x0606060606060606ULL) & high) ^ threes);
    return not_digit == 0 ? 8 : __builtin_ctzll(not_digit) >> 3;
}

/* The value of the first n (1..8) bytes of `chunk`, all digits. */
static inline uint64_t
digits_value(uint64_t chunk, int n)
{
    /* Subtract '0' from every byte (the digits cannot borrow), then shift the n digits to the
     * top: the vacated bytes are leading zeros of an 8-digit number. */
    uint64_t v = (chunk - 0x3030303030303030ULL) << (8 * (8 - n));
    /* Byte 2i becomes 10*d[2i] + d[2i+1]; then pairs combine into one 0..99999999 value. */
    v = v * 10 + (v >> 8);
    const uint64_t pair = 0x000000FF000000FFULL;
    v = ((v & pair) * (100 + (1000000ULL << 32)) +
         ((v >> 16) & pair) * (1 + (10000ULL << 32))) >> 32;
    return v;
}

static const uint64_t POW10_U64[9] = {
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000,
};
#endif

/* Bytes of `chunk` equal to `byte`: the high bit of each such byte is set. Bytes after the
 * first match may be flagged falsely (a borrow runs upward), so only the lowest flag counts. */
static inline uint64_t
bytes_equal(uint64_t chunk, uint64_t byte)
{
    uint64_t x = chunk ^ (byte * 0x0101010101010101ULL);
    return (x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL;
}

/* parse_number's quick path for numbers of 16 to 23 bytes, such as a float32 value printed
 * as its shortest double (`-0.03864554315805435`): `-?D{1,7}.D+`, at most 19 digits in all,
 * followed by ','. Kept out of line so the common short numbers' loop stays small. Its digits
 * may exceed 53 bits, so the value goes through to_float32's boundary check. */
static number_status __attribute__((noinline))
parse_long_number(const char **pos, const char *end, float *out)
{
    const char *p = *pos;
    if (end - p >= 40) {
        uint64_t head = load8(p);
        uint64_t comma = bytes_equal(load8(p + 16), ',');
        int length = 16 + (__builtin_ctzll(comma | (1ULL << 63)) >> 3);
        int negative = (head & 0xFF) == '-';
        uint64_t digits = head >> (8 * negative);
        int int_len = leading_digits(digits);
        int dot = negative + int_len;
        int frac_len = length - dot - 1;
        if (comma != 0 && int_len >= 1 && int_len <= 7 &&
            ((digits >> (8 * int_len)) & 0xFF) == '.' && frac_len >= 8 &&
            int_len + frac_len <= 19 &&
            (int_len == 1 || (digits & 0xFF) != '0')) {
            /* frac_len is 8..18 here: len1 is 0..8 and len2 0..2 */
            const char *fraction = p + dot + 1;
            uint64_t frac0 = load8(fraction), frac1 = load8(fraction + 8),
                     frac2 = load8(fraction + 16);
            int len1 = frac_len - 8 < 8 ? frac_len - 8 : 8;
            int len2 = frac_len - 8 - len1;
            if (leading_digits(frac0) == 8 && leading_digits(frac1) >= len1 &&
                (len2 == 0 || leading_digits(frac2) >= len2)) {
                uint64_t mantissa = digits_value(digits, int_len);
                mantissa = mantissa * POW10_U64[8] + digits_value(frac0, 8);
                if (len1) {
                    mantissa = mantissa * POW10_U64[len1] + digits_value(frac1, len1);
                }
                if (len2) {
                    mantissa = mantissa * POW10_U64[len2] + digits_value(frac2, len2);
                }
                *pos = p + length;
                return to_float32(mantissa, -frac_len, negative, 0, p, p + length, out);
            }
        }
    }
    return parse_number_careful(pos, out);
}

/* Parse one JSON number at *pos and leave *pos on the byte after it.
 *
 * The common shape, `-?D{1,7}.D{1,13}` followed directly by ',', is read from a few 8-byte
 * loads without a branch per digit. The number's end comes first, from the comma, so the next
 * number's address hangs on a short chain of operations, and the value (computed off that
 * chain) overlaps with the next number. Its digits fit in 53 bits and its power of ten is at
 * most 13, so one division gives the correctly rounded double (Clinger's fast path): no range
 * or boundary checks are needed. Anything else goes to parse_number_careful, including the
 * last numbers of the buffer (the loads need 24 bytes of room). */
static inline number_status
parse_number(const char **pos, const char *end, float *out)
{
#ifdef HAVE_SWAR
    const char *p = *pos;
    if (end - p >= 24) {
        uint64_t head = load8(p), tail = load8(p + 8);
        uint64_t comma_head = bytes_equal(head, ','), comma_tail = bytes_equal(tail, ',');
        /* both ends computed, then selected: a branch here would mispredict on lengths */
        int in_head = __builtin_ctzll(comma_head | (1ULL << 63)) >> 3;
        int in_tail = 8 + (__builtin_ctzll(comma_tail | (1ULL << 63)) >> 3);
        int length = comma_head ? in_head : in_tail;
        int negative = (head & 0xFF) == '-';
        uint64_t digits = head >> (8 * negative);
        int int_len = leading_digits(digits);
        int dot = negative + int_len;
        int frac_len = length - dot - 1;
        if ((comma_head | comma_tail) == 0) {
            return parse_long_number(pos, end, out);
        }
        if (int_len >= 1 && int_len <= 7 &&
            ((digits >> (8 * int_len)) & 0xFF) == '.' && frac_len >= 1 && frac_len <= 13 &&
            (int_len == 1 || (digits & 0xFF) != '0')) {
            uint64_t frac_head = load8(p + dot + 1), frac_tail = load8(p + dot + 9);
            int head_len = frac_len < 8 ? frac_len : 8;
            int tail_len = frac_len - head_len;
            if (leading_digits(frac_head) >= head_len &&
                (tail_len == 0 || leading_digits(frac_tail) >= tail_len)) {
                uint64_t mantissa = int_len == 1 ? (digits & 0xFF) - '0'
                                                 : digits_value(digits, int_len);
                mantissa = mantissa * POW10_U64[head_len] + digits_value(frac_head, head_len);
                if (tail_len) {
                    mantissa =
                        mantissa * POW10_U64[tail_len] + digits_value(frac_tail, tail_len);
                }
                float f = (float)((double)mantissa / POW10[frac_len]);
                *out = negative ? -f : f;
                *pos = p + length;
                return NUMBER_OK;
            }
        }
    }
#else
    (void)end;
#endif
    return parse_number_careful(pos, out);
}

/* Read the numbers of the array whose '[' is at *pos into values[*count...] and leave *pos past
 * its ']'. Returns NUMBER_OK, the status of the number that failed, or NUMBER_BAD with *problem
 * set when the array's punctuation is wrong. The buffer must end with a byte that stops every
 * scan (']' or '}'), so no read passes `end`. */
static inline number_status
read_array(const char **pos, const char *end, float *values, Py_ssize_t capacity,
           Py_ssize_t *count, const char **problem)
{
    const char *p = *pos + 1;
    Py_ssize_t n = *count;
    number_status status = NUMBER_OK;
    while (is_ws(*p)) p++;
    if (*p != ']') {
        for (;;) {
            if (n >= capacity) { /* cannot happen: a number takes at least two bytes */
                *problem = "expected an array of numbers";
                status = NUMBER_BAD;
                break;
            }
            status = parse_number(&p, end, &values[n]);
            if (status != NUMBER_OK) {
                break;
            }
            n++;
            while (is_ws(*p)) p++;
            if (*p == ',') {
                p++;
                while (is_ws(*p)) p++;
                continue;
            }
            if (*p != ']') {
                *problem = "expected ',' or ']' after a number";
                status = NUMBER_BAD;
            }
            break;
        }
    }
    *count = n;
    if (status == NUMBER_OK) {
        *pos = p + 1;
    }
    return status;
}

static PyObject *
parse_float32_array(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const char *p = (const char *)view.buf;
    const char *end = p + view.len;
    /* Every number takes at least one byte and one separator. */
    Py_ssize_t capacity = view.len / 2 + 1;
    float *values = PyMem_Malloc((size_t)capacity * sizeof(float));
    if (values == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    Py_ssize_t count = 0;
    const char *problem = NULL;
    number_status status = NUMBER_OK;

    /* The array must end with ']' (after trailing whitespace): with that byte as the last one,
     * every scan inside stops on it, so the loops below need no bounds checks. */
    while (p < end && is_ws(*p)) p++;
    while (end > p && is_ws(end[-1])) end--;
    if (end - p < 2 || *p != '[' || end[-1] != ']') {
        problem = "expected an array of numbers";
        goto fail;
    }
    status = read_array(&p, end, values, capacity, &count, &problem);
    if (status != NUMBER_OK) {
        goto fail;
    }
    if (p != end) {
        problem = "unexpected bytes after the array";
        goto fail;
    }
    PyBuffer_Release(&view);
    PyObject *out = PyBytes_FromStringAndSize((const char *)values, count * (Py_ssize_t)sizeof(float));
    PyMem_Free(values);
    return out;

fail:
    PyBuffer_Release(&view);
    PyMem_Free(values);
    if (status == NUMBER_ERROR) {
        return NULL;
    }
    if (status == NUMBER_RANGE) {
        PyErr_Format(PyExc_ValueError,
                     "number out of range at index %zd (beyond float32 range, "
                     "|x| > 3.4028235e38)", count);
    }
    else if (problem != NULL) {
        PyErr_Format(PyExc_ValueError, "%s (at index %zd)", problem, count);
    }
    else {
        PyErr_Format(PyExc_ValueError, "expected a number at index %zd", count);
    }
    return NULL;
}

/* --- whole bodies: every vector parsed in one pass ------------------------------------------
 *
 * Decoding a body through msgspec.Raw costs two passes over each vector: msgspec validates the
 * array while it skips it, then parse_float32_array reads it again. extract_vectors makes one:
 * it walks the body's JSON structure, parses each vector where the layout says vectors live,
 * and returns the body with each such array replaced by its index (a small integer), plus the
 * vectors. msgspec then decodes a body of a few kilobytes, and the models' __post_init__ look
 * the vectors up by index. The walk is lenient: msgspec still checks the stripped body, and a
 * valid number array swapped for an integer changes nothing else about the document. Whatever
 * the walk is not sure of (a key with an escape, a vector key holding something other than an
 * array of numbers or null, deep nesting, anything that is not an object) makes it answer None,
 * and the caller decodes the body the ordinary way. */

#define MAX_DEPTH 64
#define MAX_KEYS 2

typedef enum { STEP_KEY, STEP_ITEMS, STEP_VECTOR } step_kind;

typedef struct {
    step_kind kind;
    const char *keys[MAX_KEYS]; /* for STEP_KEY and STEP_VECTOR */
} layout_step;

/* Layout 1: an Embed v1 task, {"video_embedding": {"segments": [{"float": [...]}]}}.
 * Layout 2: an Embed v2 task, {"data": [{"embedding": [...], "embedding_uncertainty": [...]}]}. */
static const layout_step LAYOUT_V1[] = {
    {STEP_KEY, {"video_embedding", NULL}},
    {STEP_KEY, {"segments", NULL}},
    {STEP_ITEMS, {NULL, NULL}},
    {STEP_VECTOR, {"float", NULL}},
};
static const layout_step LAYOUT_V2[] = {
    {STEP_KEY, {"data", NULL}},
    {STEP_ITEMS, {NULL, NULL}},
    {STEP_VECTOR, {"embedding", "embedding_uncertainty"}},
};

static int
key_matches(const layout_step *step, const char *key, Py_ssize_t len)
{
    for (int i = 0; i < MAX_KEYS && step->keys[i] != NULL; i++) {
        if ((Py_ssize_t)strlen(step->keys[i]) == len && memcmp(step->keys[i], key, (size_t)len) == 0) {
            return 1;
        }
    }
    return 0;
}

typedef struct {
    char *out;          /* the stripped body being written */
    Py_ssize_t out_len;
    const char *copied; /* input up to here is in out already */
    float *values;      /* every vector's floats, one after another */
    Py_ssize_t n_values;
    Py_ssize_t capacity;
    Py_ssize_t *starts; /* where each vector starts in values */
    Py_ssize_t n_vectors;
    Py_ssize_t max_vectors;
} extraction;

/* Parse the array of numbers at *pos into ex->values. 0 on success; -1 if it is anything else
 * (then the caller gives up: the ordinary path will report it); -2 with an exception set. */
static int
extract_array(const char **pos, const char *end, extraction *ex)
{
    const char *p = *pos;
    const char *problem = NULL;
    Py_ssize_t first = ex->n_values;
    number_status status = read_array(&p, end, ex->values, ex->capacity, &ex->n_values, &problem);
    if (status != NUMBER_OK) {
        return status == NUMBER_ERROR ? -2 : -1;
    }
    if (ex->n_vectors >= ex->max_vectors) {
        return -1;
    }
    ex->starts[ex->n_vectors] = first;
    /* the body so far, then the vector's index in place of the array; the index must not be
     * longer than the array it replaces, so that the output never outgrows the input */
    char index[24];
    int index_len = snprintf(index, sizeof index, "%zd", ex->n_vectors);
    if (index_len <= 0 || index_len > p - *pos) {
        return -1;
    }
    Py_ssize_t before = *pos - ex->copied;
    memcpy(ex->out + ex->out_len, ex->copied, (size_t)before);
    ex->out_len += before;
    memcpy(ex->out + ex->out_len, index, (size_t)index_len);
    ex->out_len += index_len;
    ex->n_vectors++;
    ex->copied = p;
    *pos = p;
    return 0;
}

/* Walk the body; 1 when vectors were extracted, 0 to give up, -1 with an exception set. */
static int
walk(const char *start, const char *end, const layout_step *layout, int layout_len,
     extraction *ex)
{
    signed char level[MAX_DEPTH]; /* per open container: layout steps matched, or -1 */
    char is_object[MAX_DEPTH];
    int depth = 0;
    int expect_key = 1;
    int value_level = -1; /* level of a container value about to open */
    int vector_next = 0;  /* the value about to come is a vector */
    const char *p = start + 1;
    level[0] = 0;
    is_object[0] = 1;

    while (p < end) {
        char c = *p;
        switch (c) {
        case ' ': case '\t': case '\n': case '\r': case ':':
            p++;
            break;
        case ',':
            p++;
            expect_key = is_object[depth];
            value_level = -1;
            vector_next = 0;
            if (!is_object[depth]) {
                int lv = level[depth];
                value_level = (lv >= 0 && lv < layout_len && layout[lv].kind == STEP_ITEMS)
                                  ? lv + 1 : -1;
            }
            break;
        case '"': {
            const char *s = ++p;
            int escaped = 0;
            for (;;) {
                const char *q = memchr(p, '"', (size_t)(end - p));
                if (q == NULL) {
                    return 0;
                }
                const char *b = q;
                while (b > s && b[-1] == '\\') b--;
                if ((q - b) % 2 == 0) { /* an even run of backslashes: this quote ends it */
                    escaped |= memchr(s, '\\', (size_t)(q - s)) != NULL;
                    p = q + 1;
                    break;
                }
                p = q + 1;
            }
            if (is_object[depth] && expect_key) {
                int lv = level[depth];
                expect_key = 0;
                value_level = -1;
                vector_next = 0;
                if (lv >= 0 && lv < layout_len && layout[lv].kind != STEP_ITEMS) {
                    if (escaped) {
                        return 0; /* msgspec would unescape it; be sure rather than fast */
                    }
                    if (key_matches(&layout[lv], s, p - 1 - s)) {
                        if (layout[lv].kind == STEP_VECTOR) {
                            vector_next = 1;
                        }
                        else {
                            value_level = lv + 1;
                        }
                    }
                }
            }
            else if (vector_next) {
                return 0; /* a string where a vector belongs */
            }
            else {
                value_level = -1;
            }
            break;
        }
        case '{':
        case '[':
            if (vector_next) {
                if (c == '{') {
                    return 0;
                }
                int got = extract_array(&p, end, ex);
                if (got < 0) {
                    return got == -2 ? -1 : 0;
                }
                vector_next = 0;
                break;
            }
            if (++depth >= MAX_DEPTH) {
                return 0;
            }
            level[depth] = (signed char)value_level;
            is_object[depth] = c == '{';
            expect_key = c == '{';
            value_level = -1;
            if (c == '[') {
                int lv = level[depth];
                value_level = (lv >= 0 && lv < layout_len && layout[lv].kind == STEP_ITEMS)
                                  ? lv + 1 : -1;
            }
            p++;
            break;
        case '}':
        case ']':
            if (depth == 0) {
                /* the root closes: only whitespace may follow (end was trimmed to it) */
                return p + 1 == end && c == '}' && ex->n_vectors > 0 ? 1 : 0;
            }
            depth--;
            expect_key = 0;
            value_level = -1;
            vector_next = 0;
            p++;
            break;
        default:
            /* a scalar: number, true, false, null */
            if (vector_next) {
                if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
                    vector_next = 0; /* an absent vector: kept as null */
                }
                else {
                    return 0;
                }
            }
            value_level = -1;
            while (p < end && *p != ',' && *p != '}' && *p != ']' && !is_ws(*p)) p++;
            break;
        }
    }
    return 0;
}

static PyObject *
extract_vectors(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "extract_vectors(body, layout) takes 2 arguments");
        return NULL;
    }
    long which = PyLong_AsLong(args[1]);
    if (which == -1 && PyErr_Occurred()) {
        return NULL;
    }
    const layout_step *layout;
    int layout_len;
    if (which == 1) {
        layout = LAYOUT_V1;
        layout_len = (int)(sizeof LAYOUT_V1 / sizeof LAYOUT_V1[0]);
    }
    else if (which == 2) {
        layout = LAYOUT_V2;
        layout_len = (int)(sizeof LAYOUT_V2 / sizeof LAYOUT_V2[0]);
    }
    else {
        PyErr_SetString(PyExc_ValueError, "layout is 1 (Embed v1) or 2 (Embed v2)");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const char *start = (const char *)view.buf;
    const char *end = start + view.len;
    while (start < end && is_ws(*start)) start++;
    while (end > start && is_ws(end[-1])) end--;
    /* An object, closed by its last byte: that '}' stops every scan of the number parser. */
    if (end - start < 2 || *start != '{' || end[-1] != '}') {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    extraction ex = {0};
    Py_ssize_t len = end - start;
    ex.capacity = len / 2 + 1;
    ex.max_vectors = len / 2 + 1;
    ex.out = PyMem_Malloc((size_t)len + 1);
    ex.values = PyMem_Malloc((size_t)ex.capacity * sizeof(float));
    ex.starts = PyMem_Malloc((size_t)ex.max_vectors * sizeof(Py_ssize_t));
    ex.copied = start;
    PyObject *result = NULL;
    if (ex.out == NULL || ex.values == NULL || ex.starts == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int walked = walk(start, end, layout, layout_len, &ex);
    if (walked < 0) {
        goto done;
    }
    if (walked == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    memcpy(ex.out + ex.out_len, ex.copied, (size_t)(end - ex.copied));
    ex.out_len += end - ex.copied;
    PyObject *body = PyBytes_FromStringAndSize(ex.out, ex.out_len);
    PyObject *vectors = PyList_New(ex.n_vectors);
    if (body == NULL || vectors == NULL) {
        Py_XDECREF(body);
        Py_XDECREF(vectors);
        goto done;
    }
    for (Py_ssize_t i = 0; i < ex.n_vectors; i++) {
        Py_ssize_t first = ex.starts[i];
        Py_ssize_t stop = i + 1 < ex.n_vectors ? ex.starts[i + 1] : ex.n_values;
        PyObject *data = PyBytes_FromStringAndSize((const char *)(ex.values + first),
                                                   (stop - first) * (Py_ssize_t)sizeof(float));
        if (data == NULL) {
            Py_DECREF(body);
            Py_DECREF(vectors);
            goto done;
        }
        PyList_SET_ITEM(vectors, i, data);
    }
    result = PyTuple_Pack(2, body, vectors);
    Py_DECREF(body);
    Py_DECREF(vectors);
done:
    PyMem_Free(ex.out);
    PyMem_Free(ex.values);
    PyMem_Free(ex.starts);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"parse_float32_array", parse_float32_array, METH_O,
     "parse_float32_array(json_array, /) -> bytes\n\n"
     "The numbers of a JSON array as native float32 bytes: each number's correctly rounded\n"
     "double, rounded to float32. ValueError for anything else, or for a value outside\n"
     "float32 range."},
    {"extract_vectors", (PyCFunction)(void (*)(void))extract_vectors, METH_FASTCALL,
     "extract_vectors(body, layout, /) -> tuple[bytes, list[bytes]] | None\n\n"
     "Parse every vector of an Embed v1 (layout 1) or v2 (layout 2) task body in one pass:\n"
     "the body with each vector array replaced by its index, and each vector as native\n"
     "float32 bytes; None when the body is not plainly of that shape (decode it as is)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "twelvelabs_async._speedups",
    "Optional C accelerator for decoding embedding vectors (see _vector.py).",
    0,
    speedups_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
