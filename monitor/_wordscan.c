/* The matcher's passes over words, compiled: which words of a text may start a watched
 * phrase, and the terms an item is compared with the seed documents by.
 *
 * The reference is Python: monitor.match.PhraseIndex, which looks each space-separated word
 * of a (prepared) text up in a memo of the phrase starts it holds. Most words hold none, and
 * making a Python string of each word to look it up is most of the matcher's time. This pass
 * reads the text in place and answers, word by word, whether the word *may* hold the first
 * token of some phrase; the Python side then looks up only those words, exactly as before.
 * A "may" is never a "does not": the answer may include words holding nothing, and never
 * leaves out a word that holds something.
 *
 *   Scanner(keys).spans(text) -> list[int]
 *       start and end offsets, one pair after the other, of each word of `text` (cut at
 *       plain spaces, U+0020) that may hold a token whose key is in `keys`.
 *
 * Keys are `monitor.match.token_key` values. On ASCII text a token is either a run of
 * letters and digits joined by single apostrophes ("don't"), whose key is its lower case
 * with a light English stem (`_latin_stem`), or one punctuation character, whose key is
 * itself; an English possessive ('s after a letter, at a token's end) splits into the stem
 * and the key "'s". A word with a character outside ASCII is always returned: its tokens
 * follow Unicode rules (Cyrillic stems, casefolding) that only the Python side applies.
 *
 *   TermCounter(stopwords).counts(text) -> dict[str, int] | None
 *       `monitor.similarity._terms(text)` for ASCII text (each term's count, in order of
 *       first use), None for any other text (left to the Python side).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static int is_digit(Py_UCS4 c) { return c >= '0' && c <= '9'; }
static int is_upper(Py_UCS4 c) { return c >= 'A' && c <= 'Z'; }
static int is_lower(Py_UCS4 c) { return c >= 'a' && c <= 'z'; }
static int is_alpha(Py_UCS4 c) { return is_upper(c) || is_lower(c); }
static int is_alnum(Py_UCS4 c) { return is_alpha(c) || is_digit(c); }

/* --- a set of short byte strings (keys, stopwords) ---------------------------------------- */

/* Slots at least: a power of two, at least four times the strings. */
#define SLOTS_MIN 64

/* Open addressing over copies of the strings; `text` is NULL until `strings_alloc`. */
typedef struct {
    char **text;
    Py_ssize_t *length;
    Py_ssize_t mask;
    /* The longest string held: a longer one is not in the set. */
    Py_ssize_t longest;
} Strings;

/* FNV-1a over the string's bytes. */
static uint64_t string_hash(const char *text, Py_ssize_t length)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (Py_ssize_t i = 0; i < length; i++) {
        h = (h ^ (unsigned char)text[i]) * UINT64_C(0x100000001b3);
    }
    return h ^ (h >> 29);
}

/* Room for `count` strings; -1 (MemoryError set) when memory ran out. */
static int strings_alloc(Strings *set, Py_ssize_t count)
{
    Py_ssize_t slots = SLOTS_MIN;
    while (slots < 4 * count) {
        slots *= 2;
    }
    set->mask = slots - 1;
    set->longest = 0;
    set->text = PyMem_Calloc(slots, sizeof(char *));
    set->length = PyMem_Calloc(slots, sizeof(Py_ssize_t));
    if (set->text == NULL || set->length == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void strings_free(Strings *set)
{
    if (set->text != NULL) {
        for (Py_ssize_t i = 0; i <= set->mask; i++) {
            PyMem_Free(set->text[i]);
        }
    }
    PyMem_Free(set->text);
    PyMem_Free(set->length);
    set->text = NULL;
    set->length = NULL;
}

/* The slot holding the string, or the empty slot where it would go. */
static Py_ssize_t strings_slot(const Strings *set, const char *text, Py_ssize_t length)
{
    Py_ssize_t slot = (Py_ssize_t)(string_hash(text, length) & (uint64_t)set->mask);
    while (set->text[slot] != NULL
           && !(set->length[slot] == length && memcmp(set->text[slot], text, length) == 0)) {
        slot = (slot + 1) & set->mask;
    }
    return slot;
}

static int strings_has(const Strings *set, const char *text, Py_ssize_t length)
{
    return length > 0 && length <= set->longest
           && set->text[strings_slot(set, text, length)] != NULL;
}

/* Add a copy of the string (at most a quarter of the slots are ever used); -1 (MemoryError
 * set) when memory ran out. */
static int strings_add(Strings *set, const char *text, Py_ssize_t length)
{
    Py_ssize_t slot = strings_slot(set, text, length);
    if (set->text[slot] != NULL) {
        return 0;
    }
    char *copy = PyMem_Malloc(length > 0 ? length : 1);
    if (copy == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(copy, text, length);
    set->text[slot] = copy;
    set->length[slot] = length;
    if (length > set->longest) {
        set->longest = length;
    }
    return 0;
}

/* --- Scanner ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    /* Word keys: lower-case ASCII letters, digits and apostrophes. */
    Strings keys;
    /* Punctuation characters that are keys themselves (or the apostrophe, for "'s"). */
    unsigned char punctuation[128];
    /* Some key has a shape no ASCII token has a rule for here: every word may hold it. */
    int every_word;
} Scanner;

static int has_key(const Scanner *self, const char *text, Py_ssize_t length)
{
    return strings_has(&self->keys, text, length);
}

/* Whether `key` (ASCII) has the shape of a word token's key: letters and digits joined by
 * single apostrophes. */
static int word_shaped(const char *key, Py_ssize_t length)
{
    if (length == 0 || !is_alnum((unsigned char)key[0]) || !is_alnum((unsigned char)key[length - 1])) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c == '\'') {
            if (key[i - 1] == '\'') {
                return 0;
            }
        }
        else if (!is_alnum(c) || is_upper(c)) {
            return 0;
        }
    }
    return 1;
}

static int add_key(Scanner *self, PyObject *key)
{
    if (!PyUnicode_Check(key)) {
        PyErr_Format(PyExc_TypeError, "keys must be str, not %.80s", Py_TYPE(key)->tp_name);
        return -1;
    }
    if (!PyUnicode_IS_ASCII(key)) {
        return 0; /* no ASCII token has a key outside ASCII */
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(key);
    const char *text = (const char *)PyUnicode_DATA(key);
    if (length == 1 && !is_alnum((unsigned char)text[0])) {
        self->punctuation[(unsigned char)text[0]] = 1;
        return 0;
    }
    if (length == 2 && text[0] == '\'' && text[1] == 's') {
        self->punctuation['\''] = 1;
        return 0;
    }
    if (!word_shaped(text, length)) {
        self->every_word = 1;
        return 0;
    }
    return strings_add(&self->keys, text, length);
}

static void Scanner_dealloc(Scanner *self)
{
    strings_free(&self->keys);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Scanner_init(Scanner *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"keys", NULL};
    PyObject *iterable;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:Scanner", names, &iterable)) {
        return -1;
    }
    if (self->keys.text != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner is already initialised");
        return -1;
    }
    PyObject *keys = PySequence_Fast(iterable, "keys must be an iterable of str");
    if (keys == NULL) {
        return -1;
    }
    memset(self->punctuation, 0, sizeof self->punctuation);
    self->every_word = 0;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(keys);
    if (strings_alloc(&self->keys, count) < 0) {
        Py_DECREF(keys);
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (add_key(self, PySequence_Fast_GET_ITEM(keys, i)) < 0) {
            Py_DECREF(keys);
            return -1;
        }
    }
    Py_DECREF(keys);
    return 0;
}

/* Whether the token `lower[0:length]` (lower case) has a key in the table: its key is
 * itself, or for a token starting with a letter its light stem (`_latin_stem`). */
static int token_is_key(const Scanner *self, char *lower, Py_ssize_t length)
{
    if (!is_lower((unsigned char)lower[0])) {
        return has_key(self, lower, length);
    }
    if (length > 4 && memcmp(lower + length - 3, "ies", 3) == 0) {
        char last = lower[length - 3];
        lower[length - 3] = 'y';
        int found = has_key(self, lower, length - 2);
        lower[length - 3] = last;
        return found;
    }
    if (length > 3 && lower[length - 1] == 's') {
        char before = lower[length - 2];
        if (before != 's' && before != 'u' && before != 'i') {
            return has_key(self, lower, length - 1);
        }
    }
    return has_key(self, lower, length);
}

typedef struct {
    int kind;
    const void *data;
    Py_ssize_t length;
} Text;

static Py_UCS4 at(const Text *t, Py_ssize_t i)
{
    return PyUnicode_READ(t->kind, t->data, i);
}

/* Read the token of letters and digits (joined by single apostrophes) starting at `*i`,
 * lower-cased into `lower`; `*i` is left past it. Whether it, or its part before one of its
 * apostrophes (a possessive's stem), has a key. The token is cut short at a character
 * outside ASCII, whose word the caller returns anyway. */
static int word_token_is_key(const Scanner *self, const Text *t, Py_ssize_t *i, char *lower)
{
    Py_ssize_t used = 0, pos = *i;
    int found = 0;
    for (;;) {
        while (pos < t->length && is_alnum(at(t, pos))) {
            Py_UCS4 c = at(t, pos++);
            lower[used++] = (char)(is_upper(c) ? c + 32 : c);
        }
        if (pos + 1 < t->length && at(t, pos) == '\'' && is_alnum(at(t, pos + 1))) {
            if (used <= self->keys.longest + 2) {
                found = found || token_is_key(self, lower, used);
            }
            lower[used++] = '\'';
            pos++;
            continue;
        }
        break;
    }
    *i = pos;
    if (!found && used <= self->keys.longest + 2) {
        found = token_is_key(self, lower, used);
    }
    return found;
}

/* Whether the word t[start:end] (no plain space inside) may hold a key's token. */
static int word_may_start(const Scanner *self, const Text *t, Py_ssize_t start, Py_ssize_t end,
                          char *lower)
{
    if (self->every_word) {
        return 1;
    }
    Py_ssize_t i = start;
    while (i < end) {
        Py_UCS4 c = at(t, i);
        if (c >= 128) {
            return 1;
        }
        if (is_alnum(c)) {
            if (word_token_is_key(self, t, &i, lower)) {
                return 1;
            }
            continue;
        }
        if (self->punctuation[c]) {
            return 1;
        }
        i++;
    }
    return 0;
}

PyDoc_STRVAR(spans_doc,
"spans(text, /)\n--\n\n"
"Start and end offsets, one pair after the other, of each word of `text` (cut at plain\n"
"spaces) that may hold a token whose key is one of the scanner's keys: every word that\n"
"does, perhaps with others. A word with a character outside ASCII is always included.");

static PyObject *Scanner_spans(Scanner *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "spans() needs a str, not %.80s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    if (self->keys.text == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner was not initialised");
        return NULL;
    }
    Text t = {PyUnicode_KIND(text), PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text)};
    /* A token is lower-cased here whole: no token is longer than the text. */
    char *lower = PyMem_Malloc(t.length + 1);
    PyObject *out = PyList_New(0);
    if (lower == NULL || out == NULL) {
        PyMem_Free(lower);
        Py_XDECREF(out);
        return out == NULL ? NULL : PyErr_NoMemory();
    }
    Py_ssize_t i = 0;
    while (i < t.length) {
        if (at(&t, i) == ' ') {
            i++;
            continue;
        }
        Py_ssize_t start = i;
        while (i < t.length && at(&t, i) != ' ') {
            i++;
        }
        if (!word_may_start(self, &t, start, i, lower)) {
            continue;
        }
        PyObject *first = PyLong_FromSsize_t(start), *last = PyLong_FromSsize_t(i);
        int failed = first == NULL || last == NULL || PyList_Append(out, first) < 0
                     || PyList_Append(out, last) < 0;
        Py_XDECREF(first);
        Py_XDECREF(last);
        if (failed) {
            PyMem_Free(lower);
            Py_DECREF(out);
            return NULL;
        }
    }
    PyMem_Free(lower);
    return out;
}

static PyMethodDef Scanner_methods[] = {
    {"spans", (PyCFunction)Scanner_spans, METH_O, spans_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(Scanner_doc,
"Scanner(keys)\n--\n\n"
"Which words of a text may hold a token whose key (`monitor.match.token_key`) is one of\n"
"`keys`: the first keys of a watchlist's phrases.");

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "monitor._wordscan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Scanner_doc,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
};

/* --- TermCounter ------------------------------------------------------------------------- */

/* The shortest word `monitor.similarity._WORD` takes. */
#define MIN_TERM 3

typedef struct {
    PyObject_HEAD
    /* Stopwords: lower-case ASCII. */
    Strings stopwords;
} TermCounter;

static void TermCounter_dealloc(TermCounter *self)
{
    strings_free(&self->stopwords);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Fill `set` from an iterable of ASCII str (`what` names it in errors); -1 with an error set. */
static int strings_fill(Strings *set, PyObject *iterable, const char *what)
{
    PyObject *words = PySequence_Fast(iterable, "words must be an iterable of str");
    if (words == NULL) {
        return -1;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(words);
    if (strings_alloc(set, count) < 0) {
        Py_DECREF(words);
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *word = PySequence_Fast_GET_ITEM(words, i);
        if (!PyUnicode_Check(word) || !PyUnicode_IS_ASCII(word)) {
            Py_DECREF(words);
            PyErr_Format(PyExc_ValueError, "%s must be ASCII str", what);
            return -1;
        }
        const char *text = (const char *)PyUnicode_DATA(word);
        if (strings_add(set, text, PyUnicode_GET_LENGTH(word)) < 0) {
            Py_DECREF(words);
            return -1;
        }
    }
    Py_DECREF(words);
    return 0;
}

static int TermCounter_init(TermCounter *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"stopwords", NULL};
    PyObject *iterable;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:TermCounter", names, &iterable)) {
        return -1;
    }
    if (self->stopwords.text != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "TermCounter is already initialised");
        return -1;
    }
    return strings_fill(&self->stopwords, iterable, "stopwords");
}

/* Count one word (lower-case ASCII letters, at least MIN_TERM): its singular
 * (`_singular`) unless it is a stopword. */
static int count_word(const TermCounter *self, PyObject *counts, char *word, Py_ssize_t length)
{
    if (strings_has(&self->stopwords, word, length)) {
        return 0;
    }
    if (length > 4 && memcmp(word + length - 3, "ies", 3) == 0) {
        word[length - 3] = 'y';
        length -= 2;
    }
    else if (length > 3 && word[length - 1] == 's' && word[length - 2] != 's'
             && word[length - 2] != 'u' && word[length - 2] != 'i') {
        length -= 1;
    }
    PyObject *term = PyUnicode_FromStringAndSize(word, length);
    if (term == NULL) {
        return -1;
    }
    PyObject *seen = PyDict_GetItemWithError(counts, term);
    PyObject *count = NULL;
    if (seen != NULL) {
        count = PyLong_FromSsize_t(PyLong_AsSsize_t(seen) + 1);
    }
    else if (!PyErr_Occurred()) {
        count = PyLong_FromLong(1);
    }
    int failed = count == NULL || PyDict_SetItem(counts, term, count) < 0;
    Py_DECREF(term);
    Py_XDECREF(count);
    return failed ? -1 : 0;
}

PyDoc_STRVAR(counts_doc,
"counts(text, /)\n--\n\n"
"`monitor.similarity._terms(text)` as a dict (each term's count, in order of first use)\n"
"for ASCII text; None for any other text.");

static PyObject *TermCounter_counts(TermCounter *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "counts() needs a str, not %.80s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    if (self->stopwords.text == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "TermCounter was not initialised");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text)) {
        Py_RETURN_NONE;
    }
    const unsigned char *data = (const unsigned char *)PyUnicode_DATA(text);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    char *word = PyMem_Malloc(length + 1);
    PyObject *counts = PyDict_New();
    if (word == NULL || counts == NULL) {
        PyMem_Free(word);
        Py_XDECREF(counts);
        return counts == NULL ? NULL : PyErr_NoMemory();
    }
    Py_ssize_t used = 0;
    for (Py_ssize_t i = 0; i <= length; i++) {
        unsigned char c = i < length ? data[i] : 0;
        if (is_alpha(c)) {
            word[used++] = (char)(is_upper(c) ? c + 32 : c);
            continue;
        }
        if (used >= MIN_TERM && count_word(self, counts, word, used) < 0) {
            PyMem_Free(word);
            Py_DECREF(counts);
            return NULL;
        }
        used = 0;
    }
    PyMem_Free(word);
    return counts;
}

static PyMethodDef TermCounter_methods[] = {
    {"counts", (PyCFunction)TermCounter_counts, METH_O, counts_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(TermCounter_doc,
"TermCounter(stopwords)\n--\n\n"
"The terms of ASCII text as `monitor.similarity._terms` counts them: words of three or\n"
"more letters, lower-cased, without `stopwords` (lower-case ASCII), in the singular.");

static PyTypeObject TermCounterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "monitor._wordscan.TermCounter",
    .tp_basicsize = sizeof(TermCounter),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = TermCounter_doc,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)TermCounter_init,
    .tp_dealloc = (destructor)TermCounter_dealloc,
    .tp_methods = TermCounter_methods,
};

/* --- WordTally ---------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    /* Two vocabularies of lower-case ASCII words; `second.text` is NULL until set up. */
    Strings first;
    Strings second;
} WordTally;

static void WordTally_dealloc(WordTally *self)
{
    strings_free(&self->first);
    strings_free(&self->second);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int WordTally_init(WordTally *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"first", "second", NULL};
    PyObject *first, *second;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:WordTally", names, &first, &second)) {
        return -1;
    }
    if (self->first.text != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "WordTally is already initialised");
        return -1;
    }
    if (strings_fill(&self->first, first, "first") < 0) {
        return -1;
    }
    return strings_fill(&self->second, second, "second");
}

PyDoc_STRVAR(tally_doc,
"tally(text, /)\n--\n\n"
"(letters, words in first, words in second) for ASCII text without an apostrophe: its\n"
"ASCII letters, and its words (runs of letters, lower-cased) held by each vocabulary;\n"
"None for any other text.");

static PyObject *WordTally_tally(WordTally *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "tally() needs a str, not %.80s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    if (self->second.text == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "WordTally was not initialised");
        return NULL;
    }
    const char *data = (const char *)PyUnicode_DATA(text);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    if (!PyUnicode_IS_ASCII(text) || memchr(data, '\'', length) != NULL) {
        Py_RETURN_NONE;
    }
    char *word = PyMem_Malloc(length + 1);
    if (word == NULL) {
        return PyErr_NoMemory();
    }
    Py_ssize_t letters = 0, in_first = 0, in_second = 0, used = 0;
    for (Py_ssize_t i = 0; i <= length; i++) {
        unsigned char c = i < length ? (unsigned char)data[i] : 0;
        if (is_alpha(c)) {
            word[used++] = (char)(is_upper(c) ? c + 32 : c);
            letters++;
            continue;
        }
        if (used > 0) {
            in_first += strings_has(&self->first, word, used);
            in_second += strings_has(&self->second, word, used);
            used = 0;
        }
    }
    PyMem_Free(word);
    return Py_BuildValue("(nnn)", letters, in_first, in_second);
}

static PyMethodDef WordTally_methods[] = {
    {"tally", (PyCFunction)WordTally_tally, METH_O, tally_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(WordTally_doc,
"WordTally(first, second)\n--\n\n"
"Counts an ASCII text's letters and its words held by two vocabularies (lower-case ASCII),\n"
"as `monitor.lang` counts a Latin text's stop words.");

static PyTypeObject WordTallyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "monitor._wordscan.WordTally",
    .tp_basicsize = sizeof(WordTally),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = WordTally_doc,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)WordTally_init,
    .tp_dealloc = (destructor)WordTally_dealloc,
    .tp_methods = WordTally_methods,
};

/* --- the module ------------------------------------------------------------------------- */

static int add_type(PyObject *m, const char *name, PyTypeObject *type)
{
    if (PyType_Ready(type) < 0) {
        return -1;
    }
    Py_INCREF(type);
    if (PyModule_AddObject(m, name, (PyObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "monitor._wordscan",
    .m_doc = "Word passes in C for matching and language detection "
             "(the references: monitor.match, monitor.similarity, monitor.lang).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__wordscan(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (add_type(m, "Scanner", &ScannerType) < 0 || add_type(m, "TermCounter", &TermCounterType) < 0
        || add_type(m, "WordTally", &WordTallyType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
