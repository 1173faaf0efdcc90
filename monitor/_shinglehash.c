/* Story shingles, compiled: the content words of an item hashed in one pass over its text.
 *
 * The reference is Python: monitor.shingles.story_words (the words) and
 * monitor.stories.word_hashes (their 32-bit hashes). This module gives the same hashes, in the
 * same order, packed as items.story_hashes stores them (little-endian uint32), without making
 * a Python string per word:
 *
 *   Hasher(stopwords, stem_chars).story(title, summary) -> bytes | None
 *       the packed hashes of story_words(title, summary), or None when the text is not ASCII
 *       (casefolding and accents are left to the Python side);
 *   word_hashes(text) -> bytes
 *       the packed hashes of the whitespace-separated words of any text;
 *   number_columns(hashes, first, out) -> int
 *       the story decision's columns (`monitor.stories._columns`): each distinct hash of
 *       hashes[first:] numbered in order of first appearance, every hash's number (or -1)
 *       written to `out`, and the count of numbers returned.
 *
 * A word's hash: the low 32 bits of the sum of its code points times one odd 64-bit
 * multiplier per position, xor-ed with its length times the golden ratio, through
 * SplitMix64's finaliser. Arithmetic wraps modulo 2**64, as numpy's uint64 does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define GOLDEN UINT64_C(0x9E3779B97F4A7C15)
/* Multipliers kept ready; a longer word computes the rest as it goes. */
#define KEPT_MULTIPLIERS 64
/* Longest stem the ASCII path can hold in one 64-bit key (7 bytes and a length byte). */
#define MAX_STEM 7
/* Stopword table slots (a power of two, at least twice the stopwords). */
#define STOP_SLOTS_MIN 64

static uint64_t mix(uint64_t x)
{
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

static uint64_t multipliers[KEPT_MULTIPLIERS];

static uint64_t multiplier(Py_ssize_t position)
{
    if (position < KEPT_MULTIPLIERS) {
        return multipliers[position];
    }
    return mix((uint64_t)position + 1) | 1;
}

static uint64_t finish(uint64_t summed, Py_ssize_t length)
{
    return mix(summed ^ ((uint64_t)length * GOLDEN));
}

/* Bytes per stored hash: its low 32 bits, little-endian. */
#define HASH_BYTES 4

static void put_hash(unsigned char *out, uint64_t value)
{
    for (int i = 0; i < HASH_BYTES; i++) {
        out[i] = (unsigned char)(value >> (8 * i));
    }
}

/* --- word_hashes ------------------------------------------------------------------------ */

PyDoc_STRVAR(word_hashes_doc,
"word_hashes(text, /)\n--\n\n"
"The 32-bit hashes of the whitespace-separated words of `text`, in order, packed as\n"
"little-endian uint32 (`monitor.stories.word_hashes` for one text). A character at or\n"
"below U+0020 separates words.");

static PyObject *word_hashes(PyObject *module, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "word_hashes() needs a str, not %.80s",
                     Py_TYPE(text)->tp_name);
        return NULL;
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    /* At most one word per two characters, plus one. */
    PyObject *out = PyBytes_FromStringAndSize(NULL, HASH_BYTES * (length / 2 + 1));
    if (out == NULL) {
        return NULL;
    }
    unsigned char *cursor = (unsigned char *)PyBytes_AS_STRING(out);
    Py_ssize_t words = 0, position = 0;
    uint64_t summed = 0;
    for (Py_ssize_t i = 0; i <= length; i++) {
        Py_UCS4 code = i < length ? PyUnicode_READ(kind, data, i) : 0;
        if (code > 32) {
            summed += (uint64_t)code * multiplier(position);
            position++;
        }
        else if (position > 0) {
            put_hash(cursor + HASH_BYTES * words, finish(summed, position));
            words++;
            summed = 0;
            position = 0;
        }
    }
    if (_PyBytes_Resize(&out, HASH_BYTES * words) < 0) {
        return NULL;
    }
    return out;
}

/* --- Hasher ----------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    Py_ssize_t stem_chars;
    /* Stopwords, lower-case ASCII, in an open-addressing table of `slots` entries. */
    Py_ssize_t slots;
    char **stop_text;
    Py_ssize_t *stop_length;
    /* The longest stopword's length: no longer word is looked up. */
    Py_ssize_t longest_stop;
} Hasher;

#define FNV_OFFSET UINT64_C(1469598103934665603)
#define FNV_PRIME UINT64_C(1099511628211)

static uint64_t bytes_key(const char *word, Py_ssize_t length)
{
    uint64_t h = FNV_OFFSET;
    for (Py_ssize_t i = 0; i < length; i++) {
        h = (h ^ (unsigned char)word[i]) * FNV_PRIME;
    }
    return h;
}

/* Whether `word` is a stopword, its `bytes_key` given. */
static int is_stopword(const Hasher *self, const char *word, Py_ssize_t length, uint64_t key)
{
    Py_ssize_t mask = self->slots - 1;
    for (Py_ssize_t slot = (Py_ssize_t)(key & (uint64_t)mask);;
         slot = (slot + 1) & mask) {
        if (self->stop_text[slot] == NULL) {
            return 0;
        }
        if (self->stop_length[slot] == length && memcmp(self->stop_text[slot], word, length) == 0) {
            return 1;
        }
    }
}

static void Hasher_dealloc(Hasher *self)
{
    if (self->stop_text != NULL) {
        for (Py_ssize_t i = 0; i < self->slots; i++) {
            PyMem_Free(self->stop_text[i]);
        }
    }
    PyMem_Free(self->stop_text);
    PyMem_Free(self->stop_length);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int add_stopword(Hasher *self, PyObject *word)
{
    if (!PyUnicode_Check(word) || !PyUnicode_IS_ASCII(word)) {
        PyErr_SetString(PyExc_ValueError, "stopwords must be ASCII strings");
        return -1;
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(word);
    const char *text = (const char *)PyUnicode_DATA(word);
    if (length == 0 || is_stopword(self, text, length, bytes_key(text, length))) {
        return 0;
    }
    Py_ssize_t mask = self->slots - 1;
    Py_ssize_t slot = (Py_ssize_t)(bytes_key(text, length) & (uint64_t)mask);
    while (self->stop_text[slot] != NULL) {
        slot = (slot + 1) & mask;
    }
    self->stop_text[slot] = PyMem_Malloc(length);
    if (self->stop_text[slot] == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(self->stop_text[slot], text, length);
    self->stop_length[slot] = length;
    if (length > self->longest_stop) {
        self->longest_stop = length;
    }
    return 0;
}

static int Hasher_init(Hasher *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"stopwords", "stem_chars", NULL};
    PyObject *stopwords;
    Py_ssize_t stem_chars;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "On:Hasher", names, &stopwords, &stem_chars)) {
        return -1;
    }
    if (self->stop_text != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Hasher is already initialised");
        return -1;
    }
    if (stem_chars < 1 || stem_chars > MAX_STEM) {
        PyErr_Format(PyExc_ValueError, "stem_chars must be 1 to %d", MAX_STEM);
        return -1;
    }
    PyObject *words = PySequence_Fast(stopwords, "stopwords must be iterable");
    if (words == NULL) {
        return -1;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(words);
    Py_ssize_t slots = STOP_SLOTS_MIN;
    while (slots < 2 * count + 1) {
        slots *= 2;
    }
    self->stem_chars = stem_chars;
    self->slots = slots;
    self->stop_text = PyMem_Calloc(slots, sizeof(char *));
    self->stop_length = PyMem_Calloc(slots, sizeof(Py_ssize_t));
    if (self->stop_text == NULL || self->stop_length == NULL) {
        Py_DECREF(words);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (add_stopword(self, PySequence_Fast_GET_ITEM(words, i)) < 0) {
            Py_DECREF(words);
            return -1;
        }
    }
    Py_DECREF(words);
    return 0;
}

/* What `str.translate(_ASCII_WORDS)` makes of each ASCII code: its lower case for a letter or
 * digit, 0 for a separator. */
static unsigned char word_char[128];

typedef struct {
    /* Distinct stems so far, as 64-bit keys (the stem's bytes and its length). */
    uint64_t *keys;
    Py_ssize_t mask;
    unsigned char *out;
    Py_ssize_t count;
} Stems;

/* Add one word (lower-case ASCII; `word_key` its `bytes_key`) unless it is a stopword or
 * its stem was seen. */
static void take_word(const Hasher *self, Stems *stems, const char *word, Py_ssize_t length,
                      uint64_t word_key)
{
    if (length <= self->longest_stop && is_stopword(self, word, length, word_key)) {
        return;
    }
    Py_ssize_t stem = length < self->stem_chars ? length : self->stem_chars;
    uint64_t key = (uint64_t)stem << 56, summed = 0;
    for (Py_ssize_t i = 0; i < stem; i++) {
        key |= (uint64_t)(unsigned char)word[i] << (8 * i);
        summed += (uint64_t)(unsigned char)word[i] * multipliers[i];
    }
    Py_ssize_t slot = (Py_ssize_t)(mix(key) & (uint64_t)stems->mask);
    while (stems->keys[slot] != 0) {
        if (stems->keys[slot] == key) {
            return;
        }
        slot = (slot + 1) & stems->mask;
    }
    stems->keys[slot] = key;
    put_hash(stems->out + HASH_BYTES * stems->count, finish(summed, stem));
    stems->count++;
}

/* Cut one ASCII text into words (lower-cased into `buffer`) and take each. */
static void take_text(const Hasher *self, Stems *stems, PyObject *text, char *buffer)
{
    const unsigned char *data = (const unsigned char *)PyUnicode_DATA(text);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text), used = 0;
    uint64_t key = FNV_OFFSET; /* the word's `bytes_key`, taken as it is read */
    for (Py_ssize_t i = 0; i <= length; i++) {
        unsigned char c = i < length ? word_char[data[i]] : 0;
        if (c != 0) {
            buffer[used++] = (char)c;
            key = (key ^ c) * FNV_PRIME;
        }
        else if (used > 0) {
            take_word(self, stems, buffer, used, key);
            used = 0;
            key = FNV_OFFSET;
        }
    }
}

PyDoc_STRVAR(story_doc,
"story(title, summary, /)\n--\n\n"
"The packed hashes of `monitor.shingles.story_words(title, summary)` (little-endian\n"
"uint32, as `items.story_hashes` stores them), or None when title or summary is not ASCII.");

static PyObject *Hasher_story(Hasher *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "story() takes two str arguments: title, summary");
        return NULL;
    }
    if (self->stop_text == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Hasher was not initialised");
        return NULL;
    }
    PyObject *title = args[0], *summary = args[1];
    if (!PyUnicode_IS_ASCII(title) || !PyUnicode_IS_ASCII(summary)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t chars = PyUnicode_GET_LENGTH(title) + PyUnicode_GET_LENGTH(summary);
    Py_ssize_t most = chars / 2 + 2; /* words: at most one per two characters, per text */
    Py_ssize_t slots = 16;
    while (slots < 2 * most) {
        slots *= 2;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, HASH_BYTES * most);
    uint64_t *keys = PyMem_Calloc(slots, sizeof(uint64_t));
    char *buffer = PyMem_Malloc(chars + 1);
    if (out == NULL || keys == NULL || buffer == NULL) {
        Py_XDECREF(out);
        PyMem_Free(keys);
        PyMem_Free(buffer);
        return out == NULL ? NULL : PyErr_NoMemory();
    }
    Stems stems = {keys, slots - 1, (unsigned char *)PyBytes_AS_STRING(out), 0};
    take_text(self, &stems, title, buffer);
    take_text(self, &stems, summary, buffer);
    PyMem_Free(keys);
    PyMem_Free(buffer);
    if (_PyBytes_Resize(&out, HASH_BYTES * stems.count) < 0) {
        return NULL;
    }
    return out;
}

static PyMethodDef Hasher_methods[] = {
    {"story", (PyCFunction)(void (*)(void))Hasher_story, METH_FASTCALL, story_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(Hasher_doc,
"Hasher(stopwords, stem_chars)\n--\n\n"
"Story shingles of ASCII text: words of letters and digits, lower-cased, without\n"
"`stopwords` (lower-case ASCII), cut to `stem_chars` characters (1 to 7), each once.");

static PyTypeObject HasherType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "monitor._shinglehash.Hasher",
    .tp_basicsize = sizeof(Hasher),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Hasher_doc,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Hasher_init,
    .tp_dealloc = (destructor)Hasher_dealloc,
    .tp_methods = Hasher_methods,
};

/* --- number_columns ---------------------------------------------------------------------- */

/* Open addressing over 64-bit hashes, the column of each in `column` (-1: an empty slot). */
typedef struct {
    int64_t *key;
    int32_t *column;
    Py_ssize_t mask;
    Py_ssize_t count;
} Columns;

static int columns_alloc(Columns *t, Py_ssize_t slots)
{
    t->key = PyMem_RawMalloc(slots * sizeof(int64_t));
    t->column = PyMem_RawMalloc(slots * sizeof(int32_t));
    if (t->key == NULL || t->column == NULL) {
        PyMem_RawFree(t->key);
        PyMem_RawFree(t->column);
        return -1;
    }
    memset(t->column, 0xff, slots * sizeof(int32_t));
    t->mask = slots - 1;
    return 0;
}

static Py_ssize_t columns_slot(const Columns *t, int64_t key)
{
    Py_ssize_t slot = (Py_ssize_t)(mix((uint64_t)key) & (uint64_t)t->mask);
    while (t->column[slot] >= 0 && t->key[slot] != key) {
        slot = (slot + 1) & t->mask;
    }
    return slot;
}

/* Double the table (kept at most half full). */
static int columns_grow(Columns *t)
{
    Columns bigger;
    if (columns_alloc(&bigger, 2 * (t->mask + 1)) < 0) {
        return -1;
    }
    for (Py_ssize_t i = 0; i <= t->mask; i++) {
        if (t->column[i] >= 0) {
            Py_ssize_t slot = columns_slot(&bigger, t->key[i]);
            bigger.key[slot] = t->key[i];
            bigger.column[slot] = t->column[i];
        }
    }
    bigger.count = t->count;
    PyMem_RawFree(t->key);
    PyMem_RawFree(t->column);
    *t = bigger;
    return 0;
}

/* A run of hashes, 4 or 8 bytes each (`width`): a buffer, or one node's packed hashes. */
typedef struct {
    const void *data;
    Py_ssize_t length;
} Segment;

/* The i-th hash of a segment as a 64-bit key. */
static inline int64_t hash_at(const Segment *segment, Py_ssize_t width, Py_ssize_t i)
{
    if (width == 4) {
        return (int64_t)((const uint32_t *)segment->data)[i];
    }
    return ((const int64_t *)segment->data)[i];
}

/* The passes themselves, without the GIL, over the segments as if joined: -1 when memory
 * ran out. */
static Py_ssize_t number(const Segment *segments, Py_ssize_t count, Py_ssize_t width,
                         Py_ssize_t first, int32_t *out)
{
    Columns t = {NULL, NULL, 0, 0};
    if (columns_alloc(&t, 4096) < 0) {
        return -1;
    }
    Py_ssize_t at = 0;
    for (Py_ssize_t s = 0; s < count; at += segments[s++].length) {
        for (Py_ssize_t i = first > at ? first - at : 0; i < segments[s].length; i++) {
            int64_t key = hash_at(&segments[s], width, i);
            Py_ssize_t slot = columns_slot(&t, key);
            if (t.column[slot] < 0) {
                if (2 * (t.count + 1) > t.mask + 1) {
                    if (columns_grow(&t) < 0) {
                        PyMem_RawFree(t.key);
                        PyMem_RawFree(t.column);
                        return -1;
                    }
                    slot = columns_slot(&t, key);
                }
                t.key[slot] = key;
                t.column[slot] = (int32_t)t.count++;
            }
            out[at + i] = t.column[slot];
        }
    }
    at = 0;
    for (Py_ssize_t s = 0; s < count && at < first; at += segments[s++].length) {
        for (Py_ssize_t i = 0; i < segments[s].length && at + i < first; i++) {
            out[at + i] = t.column[columns_slot(&t, hash_at(&segments[s], width, i))];
        }
    }
    Py_ssize_t numbered = t.count;
    PyMem_RawFree(t.key);
    PyMem_RawFree(t.column);
    return numbered;
}

/* The segments of a list or tuple of bytes, each a node's packed 32-bit hashes; `*kept`
 * holds them (a tuple of new references) while the segments are read. */
static Segment *node_segments(PyObject *nodes, Py_ssize_t *count, Py_ssize_t *length,
                              PyObject **kept)
{
    *kept = PySequence_Tuple(nodes);
    if (*kept == NULL) {
        return NULL;
    }
    *count = PyTuple_GET_SIZE(*kept);
    Segment *segments = PyMem_Malloc((*count > 0 ? *count : 1) * sizeof(Segment));
    if (segments == NULL) {
        Py_CLEAR(*kept);
        PyErr_NoMemory();
        return NULL;
    }
    *length = 0;
    for (Py_ssize_t s = 0; s < *count; s++) {
        PyObject *node = PyTuple_GET_ITEM(*kept, s);
        if (!PyBytes_Check(node) || PyBytes_GET_SIZE(node) % 4 != 0) {
            PyErr_SetString(PyExc_ValueError,
                            "number_columns() needs each node's hashes as bytes of packed "
                            "32-bit hashes");
            PyMem_Free(segments);
            Py_CLEAR(*kept);
            return NULL;
        }
        segments[s].data = PyBytes_AS_STRING(node);
        segments[s].length = PyBytes_GET_SIZE(node) / 4;
        *length += segments[s].length;
    }
    return segments;
}

PyDoc_STRVAR(number_columns_doc,
"number_columns(hashes, first, out, /)\n--\n\n"
"Number each distinct value of hashes[first:] in order of first appearance, write each\n"
"value's number, or -1 for a value only hashes[:first] holds, to `out` (a writable\n"
"contiguous buffer of int32, as long), and return how many numbers were given. `hashes`\n"
"is a contiguous buffer of 32- or 64-bit integers, or a list or tuple of bytes, each a\n"
"node's packed 32-bit hashes, read as if joined (without joining them). The GIL is\n"
"released meanwhile.");

static PyObject *number_columns(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t first;
    if (nargs != 3 || (first = PyLong_AsSsize_t(args[1])) == -1) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "number_columns() takes hashes, first, out");
        }
        return NULL;
    }
    Py_buffer in = {0}, out;
    Segment one, *segments = &one;
    PyObject *kept = NULL;
    Py_ssize_t count = 1, width = 4, length;
    if (PyList_Check(args[0]) || PyTuple_Check(args[0])) {
        segments = node_segments(args[0], &count, &length, &kept);
        if (segments == NULL) {
            return NULL;
        }
    }
    else {
        if (PyObject_GetBuffer(args[0], &in, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
            return NULL;
        }
        width = in.itemsize;
        length = width > 0 ? in.len / width : 0;
        one.data = in.buf;
        one.length = length;
    }
    Py_ssize_t numbered = -1;
    if (PyObject_GetBuffer(args[2], &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        goto done;
    }
    if ((width != 4 && width != 8) || out.itemsize != 4 || out.len / 4 != length || first < 0
        || first > length || length > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError,
                        "number_columns() needs 32- or 64-bit hashes, 0 <= first <= "
                        "len(hashes), and an int32 out as long as hashes");
    }
    else {
        Py_BEGIN_ALLOW_THREADS
        numbered = number(segments, count, width, first, (int32_t *)out.buf);
        Py_END_ALLOW_THREADS
        if (numbered < 0) {
            PyErr_NoMemory();
        }
    }
    PyBuffer_Release(&out);
done:
    if (kept != NULL) {
        PyMem_Free(segments);
        Py_DECREF(kept);
    }
    else {
        PyBuffer_Release(&in);
    }
    return numbered < 0 ? NULL : PyLong_FromSsize_t(numbered);
}

/* --- the module ------------------------------------------------------------------------- */

static PyMethodDef module_methods[] = {
    {"word_hashes", word_hashes, METH_O, word_hashes_doc},
    {"number_columns", (PyCFunction)(void (*)(void))number_columns, METH_FASTCALL,
     number_columns_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "monitor._shinglehash",
    .m_doc = "Story shingles hashed in C (the reference: monitor.shingles, monitor.stories).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__shinglehash(void)
{
    for (int i = 0; i < KEPT_MULTIPLIERS; i++) {
        multipliers[i] = mix((uint64_t)i + 1) | 1;
    }
    for (int c = 0; c < 128; c++) {
        int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        word_char[c] = (unsigned char)(alnum ? (c >= 'A' && c <= 'Z' ? c + 32 : c) : 0);
    }
    if (PyType_Ready(&HasherType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&HasherType);
    if (PyModule_AddObject(m, "Hasher", (PyObject *)&HasherType) < 0) {
        Py_DECREF(&HasherType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
