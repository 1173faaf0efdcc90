/* Passes over words, compiled: which words of a text may start a watched phrase, an item's
 * similarity to the seed documents, a text's stop words for its language, and the form of a
 * text its content hash is taken from.
 *
 * The reference is Python: monitor.match.PhraseIndex, which looks each space-separated word
 * of a (prepared) text up in a memo of the phrase starts it holds. Most words hold none, and
 * making a Python string of each word to look it up is most of the matcher's time. This pass
 * reads the text in place and answers, word by word, whether the word *may* hold the first
 * token of some phrase; the Python side then looks up only those words, exactly as before.
 * A "may" is never a "does not": the answer may include words holding nothing, and never
 * leaves out a word that holds something.
 *
 *   Scanner(keys, continuations).spans(text) -> list[int]
 *       start and end offsets, one pair after the other, of each word of `text` (cut at
 *       plain spaces, U+0020) that may hold a token whose key is in `keys`; for a key in
 *       `continuations` (whose phrases all have a second token), only where the token that
 *       follows may be one of those second tokens.
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
 *
 *   SeedScorer(stopwords, terms, idf, postings, unseen_idf, seeds).similarities(text)
 *       -> list[float] | None
 *       `monitor.similarity.SeedIndex.similarities(text)` for ASCII text, the same floats bit
 *       for bit: the same operations in the same order, and sums made as Python's `sum`
 *       makes them (compensated since Python 3.12).
 *
 *   WordTally(first, second).tally(text) -> tuple[int, int, int] | None
 *       the letters of ASCII text and its words held by each vocabulary (`monitor.lang`).
 *
 *   hash_form(text) -> str | None
 *       `monitor.normalize._ascii_hash_form(text)` for ASCII text.
 *
 * Every function answers None where the Python side must do the work, which stays the
 * reference the tests compare with.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static int is_digit(Py_UCS4 c) { return c >= '0' && c <= '9'; }
static int is_upper(Py_UCS4 c) { return c >= 'A' && c <= 'Z'; }
static int is_lower(Py_UCS4 c) { return c >= 'a' && c <= 'z'; }
static int is_alpha(Py_UCS4 c) { return is_upper(c) || is_lower(c); }
static int is_alnum(Py_UCS4 c) { return is_alpha(c) || is_digit(c); }

/* `lower[0:length]` (a lower-case ASCII token of letters and digits) made its key in place
 * (`monitor.match._latin_stem` for a token starting with a letter, the rule
 * `monitor.similarity._singular` applies to terms too); returns the key's length. */
static Py_ssize_t stem_in_place(char *lower, Py_ssize_t length)
{
    if (!is_lower((unsigned char)lower[0])) {
        return length;
    }
    if (length > 4 && memcmp(lower + length - 3, "ies", 3) == 0) {
        lower[length - 3] = 'y';
        return length - 2;
    }
    if (length > 3 && lower[length - 1] == 's' && lower[length - 2] != 's'
        && lower[length - 2] != 'u' && lower[length - 2] != 'i') {
        return length - 1;
    }
    return length;
}

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
    /* Word keys whose phrases all have a second token, and for each such key K the word
     * keys S its phrases' second tokens have, as "K\x1fS": a token of key K followed by a
     * word whose first token's key is none of them starts no phrase. Both are empty without
     * `continuations`. */
    Strings constrained;
    Strings pairs;
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
    strings_free(&self->constrained);
    strings_free(&self->pairs);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The separator of a pair's two keys (no key holds it). */
#define PAIR_SEPARATOR '\x1f'

/* One constrained key and its second keys (`Scanner.constrained`, `Scanner.pairs`); keys
 * that are not word-shaped ASCII are left out: a key left unconstrained only keeps more
 * words, and a second key of another shape never is a word's key. */
static int add_continuation(Scanner *self, PyObject *key, PyObject *seconds)
{
    if (!PyUnicode_Check(key)) {
        PyErr_Format(PyExc_TypeError, "keys must be str, not %.80s", Py_TYPE(key)->tp_name);
        return -1;
    }
    const char *first = (const char *)PyUnicode_DATA(key);
    Py_ssize_t length = PyUnicode_GET_LENGTH(key);
    if (!PyUnicode_IS_ASCII(key) || !word_shaped(first, length)) {
        return 0;
    }
    PyObject *items = PySequence_Fast(seconds, "second keys must be an iterable of str");
    if (items == NULL) {
        return -1;
    }
    int result = strings_add(&self->constrained, first, length);
    char *pair = NULL;
    for (Py_ssize_t i = 0; result == 0 && i < PySequence_Fast_GET_SIZE(items); i++) {
        PyObject *second = PySequence_Fast_GET_ITEM(items, i);
        if (!PyUnicode_Check(second)) {
            PyErr_SetString(PyExc_TypeError, "second keys must be str");
            result = -1;
            break;
        }
        const char *text = (const char *)PyUnicode_DATA(second);
        Py_ssize_t size = PyUnicode_GET_LENGTH(second);
        if (!PyUnicode_IS_ASCII(second) || !word_shaped(text, size)) {
            continue;
        }
        char *grown = PyMem_Realloc(pair, length + 1 + size);
        if (grown == NULL) {
            PyErr_NoMemory();
            result = -1;
            break;
        }
        pair = grown;
        memcpy(pair, first, length);
        pair[length] = PAIR_SEPARATOR;
        memcpy(pair + length + 1, text, size);
        result = strings_add(&self->pairs, pair, length + 1 + size);
    }
    PyMem_Free(pair);
    Py_DECREF(items);
    return result;
}

/* `continuations` (a mapping, or None): for some first keys, the keys of their phrases'
 * second tokens. */
static int add_continuations(Scanner *self, PyObject *continuations)
{
    Py_ssize_t count = continuations == Py_None ? 0 : PyObject_Length(continuations);
    if (count < 0) {
        return -1;
    }
    PyObject *items = count ? PyMapping_Items(continuations) : PyList_New(0);
    if (items == NULL) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_SetString(PyExc_TypeError, "continuations must be a mapping");
        }
        return -1;
    }
    Py_ssize_t pairs = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        Py_ssize_t n = PyObject_Length(PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), 1));
        if (n < 0) {
            Py_DECREF(items);
            return -1;
        }
        pairs += n;
    }
    if (strings_alloc(&self->constrained, count) < 0 || strings_alloc(&self->pairs, pairs) < 0) {
        Py_DECREF(items);
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        if (add_continuation(self, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1)) < 0) {
            Py_DECREF(items);
            return -1;
        }
    }
    Py_DECREF(items);
    return 0;
}

static int Scanner_init(Scanner *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"keys", "continuations", NULL};
    PyObject *iterable, *continuations = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:Scanner", names, &iterable,
                                     &continuations)) {
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
    return add_continuations(self, continuations);
}

/* Whether the token `lower[0:length]` (lower case) has a key in the table: its key is
 * itself, or for a token starting with a letter its light stem (`_latin_stem`). */
static int token_is_key(const Scanner *self, char *lower, Py_ssize_t length)
{
    /* The caller goes on reading the token in `lower`: the 'i' of "-ies", which the stem
     * turns into a 'y', is put back. */
    char third_last = length >= 3 ? lower[length - 3] : 0;
    int found = has_key(self, lower, stem_in_place(lower, length));
    if (length >= 3) {
        lower[length - 3] = third_last;
    }
    return found;
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

/* Whether a phrase may start at the key token t[start:stop], lower-cased in `lower` by
 * `word_token_is_key`: yes unless its key is constrained (all its phrases go on) and what
 * follows certainly is not a second token of one of them: the end of the text, or a plain
 * space and a word whose first token (ASCII letters and digits, up to a space, the end or
 * punctuation other than an apostrophe) has a key not paired with it. Anything else, such
 * as a token with an apostrophe, punctuation right after it or a word outside ASCII next,
 * is left to the Python side. `lower` is overwritten. */
static int token_may_start(const Scanner *self, const Text *t, Py_ssize_t start,
                           Py_ssize_t stop, char *lower)
{
    Py_ssize_t length = stop - start;
    if (self->constrained.longest == 0 || memchr(lower, '\'', length) != NULL) {
        return 1;
    }
    Py_ssize_t key = stem_in_place(lower, length);
    if (!strings_has(&self->constrained, lower, key)) {
        return 1;
    }
    if (stop >= t->length) {
        return 0;
    }
    if (at(t, stop) != ' ') {
        return 1;
    }
    /* The pair "key\x1fsecond" is built after the key: it is no longer than the text. */
    lower[key] = PAIR_SEPARATOR;
    Py_ssize_t used = key + 1, i = stop + 1;
    while (i < t->length && is_alnum(at(t, i))) {
        Py_UCS4 c = at(t, i++);
        lower[used++] = (char)(is_upper(c) ? c + 32 : c);
    }
    if (used == key + 1 || (i < t->length && (at(t, i) >= 128 || at(t, i) == '\''))) {
        return 1;
    }
    Py_ssize_t second = stem_in_place(lower + key + 1, used - key - 1);
    return strings_has(&self->pairs, lower, key + 1 + second);
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
            Py_ssize_t token_start = i;
            if (word_token_is_key(self, t, &i, lower)
                && token_may_start(self, t, token_start, i, lower)) {
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
"spaces) where a phrase may start: every word holding a token whose key is one of the\n"
"scanner's keys, but for a key of `continuations` only where the next token may go on,\n"
"perhaps with other words. A word with a character outside ASCII is always included.");

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
"Scanner(keys, continuations=None)\n--\n\n"
"Which words of a text may hold a token whose key (`monitor.match.token_key`) is one of\n"
"`keys`: the first keys of a watchlist's phrases. `continuations` maps first keys none of\n"
"whose phrases is a single token to the keys of their second tokens: a token of such a key\n"
"counts only where what follows it may be one of them.");

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

/* The term of one word (lower-case ASCII letters, at least MIN_TERM), made in place: its
 * singular (`_singular`), or nothing (0) for a stopword. Returns the term's length. */
static Py_ssize_t term_of(const Strings *stopwords, char *word, Py_ssize_t length)
{
    return strings_has(stopwords, word, length) ? 0 : stem_in_place(word, length);
}

/* The next term of ASCII text `data[0:length]` from `*at` on, lower-cased into `word`
 * (`term_of` of each run of at least MIN_TERM letters): its length, or 0 at the text's end.
 * `*at` is left past it. */
static Py_ssize_t next_term(const Strings *stopwords, const unsigned char *data,
                            Py_ssize_t length, Py_ssize_t *at, char *word)
{
    Py_ssize_t used = 0;
    for (; *at <= length; (*at)++) {
        unsigned char c = *at < length ? data[*at] : 0;
        if (is_alpha(c)) {
            word[used++] = (char)(is_upper(c) ? c + 32 : c);
            continue;
        }
        Py_ssize_t size = used >= MIN_TERM ? term_of(stopwords, word, used) : 0;
        used = 0;
        if (size > 0) {
            (*at)++;
            return size;
        }
    }
    return 0;
}

/* Count one term. */
static int count_term(PyObject *counts, const char *word, Py_ssize_t length)
{
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
    Py_ssize_t at = 0, size;
    while ((size = next_term(&self->stopwords, data, length, &at, word)) > 0) {
        if (count_term(counts, word, size) < 0) {
            PyMem_Free(word);
            Py_DECREF(counts);
            return NULL;
        }
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

/* --- SeedScorer --------------------------------------------------------------------------- */

/* Float sums as Python's built-in `sum` adds floats, so that the results equal the Python
 * path's bit for bit: left to right before 3.12, with Neumaier's compensation since. */
typedef struct {
    double sum;
    double compensation;
} FloatSum;

static void float_sum_add(FloatSum *total, double x)
{
#if PY_VERSION_HEX >= 0x030C0000
    double t = total->sum + x;
    if (fabs(total->sum) >= fabs(x)) {
        total->compensation += (total->sum - t) + x;
    }
    else {
        total->compensation += (x - t) + total->sum;
    }
    total->sum = t;
#else
    total->sum += x;
#endif
}

static double float_sum_result(const FloatSum *total)
{
#if PY_VERSION_HEX >= 0x030C0000
    if (total->compensation != 0.0 && isfinite(total->compensation)) {
        return total->sum + total->compensation;
    }
#endif
    return total->sum;
}

typedef struct {
    PyObject_HEAD
    Strings stopwords;
    /* The seeds' ASCII terms; by the slot each takes there: its idf and its postings (the
     * seeds holding it and its weight in each, `post_seed` and `post_weight` from
     * `post_start`, `post_count` of them). */
    Strings vocabulary;
    double *idf;
    Py_ssize_t *post_start;
    Py_ssize_t *post_count;
    Py_ssize_t *post_seed;
    double *post_weight;
    double unseen_idf;
    Py_ssize_t seeds;
} SeedScorer;

static void SeedScorer_dealloc(SeedScorer *self)
{
    strings_free(&self->stopwords);
    strings_free(&self->vocabulary);
    PyMem_Free(self->idf);
    PyMem_Free(self->post_start);
    PyMem_Free(self->post_count);
    PyMem_Free(self->post_seed);
    PyMem_Free(self->post_weight);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* One term's postings, a sequence of (seed number, weight), appended from `*used` on. */
static int scorer_add_postings(SeedScorer *self, Py_ssize_t slot, PyObject *postings,
                               Py_ssize_t *used, Py_ssize_t room)
{
    PyObject *pairs = PySequence_Fast(postings, "postings must be sequences of pairs");
    if (pairs == NULL) {
        return -1;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(pairs);
    self->post_start[slot] = *used;
    self->post_count[slot] = count;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t seed;
        double weight;
        if (*used >= room
            || !PyArg_ParseTuple(PySequence_Fast_GET_ITEM(pairs, i), "nd", &seed, &weight)) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "more postings than declared");
            }
            Py_DECREF(pairs);
            return -1;
        }
        if (seed < 0 || seed >= self->seeds) {
            PyErr_Format(PyExc_ValueError, "seed number %zd out of range", seed);
            Py_DECREF(pairs);
            return -1;
        }
        self->post_seed[*used] = seed;
        self->post_weight[*used] = weight;
        (*used)++;
    }
    Py_DECREF(pairs);
    return 0;
}

static int scorer_fill(SeedScorer *self, PyObject *terms, PyObject *idf, PyObject *postings,
                       Py_ssize_t room)
{
    Py_ssize_t count = PySequence_Fast_GET_SIZE(terms);
    if (PySequence_Fast_GET_SIZE(idf) != count || PySequence_Fast_GET_SIZE(postings) != count) {
        PyErr_SetString(PyExc_ValueError, "terms, idf and postings differ in length");
        return -1;
    }
    if (strings_alloc(&self->vocabulary, count) < 0) {
        return -1;
    }
    Py_ssize_t slots = self->vocabulary.mask + 1;
    self->idf = PyMem_Calloc(slots, sizeof(double));
    self->post_start = PyMem_Calloc(slots, sizeof(Py_ssize_t));
    self->post_count = PyMem_Calloc(slots, sizeof(Py_ssize_t));
    self->post_seed = PyMem_Calloc(room > 0 ? room : 1, sizeof(Py_ssize_t));
    self->post_weight = PyMem_Calloc(room > 0 ? room : 1, sizeof(double));
    if (!self->idf || !self->post_start || !self->post_count || !self->post_seed
        || !self->post_weight) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t used = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *term = PySequence_Fast_GET_ITEM(terms, i);
        if (!PyUnicode_Check(term) || !PyUnicode_IS_ASCII(term)) {
            PyErr_SetString(PyExc_ValueError, "terms must be ASCII str");
            return -1;
        }
        const char *text = (const char *)PyUnicode_DATA(term);
        Py_ssize_t length = PyUnicode_GET_LENGTH(term);
        double value = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(idf, i));
        if (value == -1.0 && PyErr_Occurred()) {
            return -1;
        }
        if (strings_has(&self->vocabulary, text, length)) {
            PyErr_SetString(PyExc_ValueError, "a term is given twice");
            return -1;
        }
        if (strings_add(&self->vocabulary, text, length) < 0) {
            return -1;
        }
        Py_ssize_t slot = strings_slot(&self->vocabulary, text, length);
        self->idf[slot] = value;
        if (scorer_add_postings(self, slot, PySequence_Fast_GET_ITEM(postings, i), &used, room) < 0) {
            return -1;
        }
    }
    return 0;
}

static int SeedScorer_init(SeedScorer *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"stopwords", "terms", "idf", "postings", "unseen_idf", "seeds", NULL};
    PyObject *stopwords, *terms_in, *idf_in, *postings_in;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOdn:SeedScorer", names, &stopwords,
                                     &terms_in, &idf_in, &postings_in, &self->unseen_idf,
                                     &self->seeds)) {
        return -1;
    }
    if (self->vocabulary.text != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "SeedScorer is already initialised");
        return -1;
    }
    if (strings_fill(&self->stopwords, stopwords, "stopwords") < 0) {
        return -1;
    }
    PyObject *terms = PySequence_Fast(terms_in, "terms must be a sequence");
    PyObject *idf = terms ? PySequence_Fast(idf_in, "idf must be a sequence") : NULL;
    PyObject *postings = idf ? PySequence_Fast(postings_in, "postings must be a sequence") : NULL;
    int result = -1;
    if (postings != NULL) {
        Py_ssize_t room = 0;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(postings); i++) {
            Py_ssize_t n = PyObject_Length(PySequence_Fast_GET_ITEM(postings, i));
            if (n < 0) {
                room = -1;
                break;
            }
            room += n;
        }
        result = room < 0 ? -1 : scorer_fill(self, terms, idf, postings, room);
    }
    Py_XDECREF(terms);
    Py_XDECREF(idf);
    Py_XDECREF(postings);
    return result;
}

/* One distinct term of a query, in order of first use. */
typedef struct {
    Py_ssize_t offset;
    Py_ssize_t length;
    Py_ssize_t count;
} QueryTerm;

/* The query's distinct terms and their counts: `terms` (its text in `buffer`) in order of
 * first use, deduplicated through `table` (-1 for an empty slot). Returns how many. */
static Py_ssize_t query_terms(const SeedScorer *self, const unsigned char *data,
                              Py_ssize_t length, char *buffer, QueryTerm *terms,
                              Py_ssize_t *table, Py_ssize_t mask)
{
    Py_ssize_t distinct = 0, end = 0, at = 0, size;
    while ((size = next_term(&self->stopwords, data, length, &at, buffer + end)) > 0) {
        Py_ssize_t slot = (Py_ssize_t)(string_hash(buffer + end, size) & (uint64_t)mask);
        while (table[slot] >= 0) {
            QueryTerm *seen = &terms[table[slot]];
            if (seen->length == size && memcmp(buffer + seen->offset, buffer + end, size) == 0) {
                break;
            }
            slot = (slot + 1) & mask;
        }
        if (table[slot] >= 0) {
            terms[table[slot]].count++;
            continue;
        }
        table[slot] = distinct;
        terms[distinct++] = (QueryTerm){end, size, 1};
        end += size;
    }
    return distinct;
}

/* Each seed's cosine similarity to the query terms, as `SeedIndex.similarities` sums it. */
static void score_terms(const SeedScorer *self, const char *buffer, const QueryTerm *terms,
                        Py_ssize_t distinct, double *weights, Py_ssize_t *slots,
                        FloatSum *sums)
{
    FloatSum norm = {0.0, 0.0};
    for (Py_ssize_t k = 0; k < distinct; k++) {
        const char *text = buffer + terms[k].offset;
        Py_ssize_t slot = strings_has(&self->vocabulary, text, terms[k].length)
                              ? strings_slot(&self->vocabulary, text, terms[k].length)
                              : -1;
        double idf = slot >= 0 ? self->idf[slot] : self->unseen_idf;
        slots[k] = slot;
        weights[k] = (1.0 + log((double)terms[k].count)) * idf;
        float_sum_add(&norm, weights[k] * weights[k]);
    }
    double length = sqrt(float_sum_result(&norm));
    if (length == 0.0) {
        return;
    }
    for (Py_ssize_t k = 0; k < distinct; k++) {
        if (slots[k] < 0) {
            continue;
        }
        double share = weights[k] / length;
        Py_ssize_t start = self->post_start[slots[k]], stop = start + self->post_count[slots[k]];
        for (Py_ssize_t p = start; p < stop; p++) {
            float_sum_add(&sums[self->post_seed[p]], share * self->post_weight[p]);
        }
    }
}

PyDoc_STRVAR(similarities_doc,
"similarities(text, /)\n--\n\n"
"Each seed's cosine similarity to ASCII `text`, in seed order, the same floats as\n"
"`monitor.similarity.SeedIndex.similarities`; None for any other text.");

static PyObject *SeedScorer_similarities(SeedScorer *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "similarities() needs a str, not %.80s",
                     Py_TYPE(text)->tp_name);
        return NULL;
    }
    if (self->vocabulary.text == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "SeedScorer was not initialised");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text)) {
        Py_RETURN_NONE;
    }
    const unsigned char *data = (const unsigned char *)PyUnicode_DATA(text);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    /* At most one term per MIN_TERM letters and a separator. */
    Py_ssize_t most = length / (MIN_TERM + 1) + 1, mask = 1;
    while (mask < 2 * most) {
        mask = mask * 2 + 1;
    }
    char *buffer = PyMem_Malloc(length + 1);
    QueryTerm *terms = PyMem_Malloc(most * sizeof(QueryTerm));
    Py_ssize_t *table = PyMem_Malloc((mask + 1) * sizeof(Py_ssize_t));
    double *weights = PyMem_Malloc(most * sizeof(double));
    Py_ssize_t *slots = PyMem_Malloc(most * sizeof(Py_ssize_t));
    FloatSum *sums = PyMem_Calloc(self->seeds > 0 ? self->seeds : 1, sizeof(FloatSum));
    PyObject *result = NULL;
    if (buffer && terms && table && weights && slots && sums) {
        memset(table, 0xff, (mask + 1) * sizeof(Py_ssize_t));
        Py_ssize_t distinct = query_terms(self, data, length, buffer, terms, table, mask);
        score_terms(self, buffer, terms, distinct, weights, slots, sums);
        result = PyList_New(self->seeds);
        for (Py_ssize_t s = 0; result != NULL && s < self->seeds; s++) {
            PyObject *value = PyFloat_FromDouble(float_sum_result(&sums[s]));
            if (value == NULL) {
                Py_CLEAR(result);
                break;
            }
            PyList_SET_ITEM(result, s, value);
        }
    }
    else {
        PyErr_NoMemory();
    }
    PyMem_Free(buffer);
    PyMem_Free(terms);
    PyMem_Free(table);
    PyMem_Free(weights);
    PyMem_Free(slots);
    PyMem_Free(sums);
    return result;
}

static PyMethodDef SeedScorer_methods[] = {
    {"similarities", (PyCFunction)SeedScorer_similarities, METH_O, similarities_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(SeedScorer_doc,
"SeedScorer(stopwords, terms, idf, postings, unseen_idf, seeds)\n--\n\n"
"`monitor.similarity.SeedIndex.similarities` for ASCII text: the query's terms counted as\n"
"`TermCounter` counts them, weighted by `idf` (`unseen_idf` for a term not in `terms`),\n"
"and each seed's sum of products over the `postings` of each term, (seed number, weight)\n"
"pairs, for `seeds` seeds. Only ASCII terms can occur in ASCII text: the others are left\n"
"out of `terms`.");

static PyTypeObject SeedScorerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "monitor._wordscan.SeedScorer",
    .tp_basicsize = sizeof(SeedScorer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = SeedScorer_doc,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)SeedScorer_init,
    .tp_dealloc = (destructor)SeedScorer_dealloc,
    .tp_methods = SeedScorer_methods,
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

/* --- hash_form ---------------------------------------------------------------------------- */

PyDoc_STRVAR(hash_form_doc,
"hash_form(text, /)\n--\n\n"
"`monitor.normalize._ascii_hash_form(text)` for ASCII text: its runs of letters and digits,\n"
"lower-cased, one space between them; None for any other text.");

static PyObject *hash_form(PyObject *module, PyObject *text)
{
    (void)module;
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "hash_form() needs a str, not %.80s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text)) {
        Py_RETURN_NONE;
    }
    const unsigned char *data = (const unsigned char *)PyUnicode_DATA(text);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    char *out = PyMem_Malloc(length > 0 ? length : 1);
    if (out == NULL) {
        return PyErr_NoMemory();
    }
    Py_ssize_t used = 0;
    int in_word = 0;
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned char c = data[i];
        if (!is_alnum(c)) {
            in_word = 0;
            continue;
        }
        if (!in_word && used > 0) {
            out[used++] = ' ';
        }
        in_word = 1;
        out[used++] = (char)(is_upper(c) ? c + 32 : c);
    }
    PyObject *result = PyUnicode_New(used, 127);
    if (result != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(result), out, used);
    }
    PyMem_Free(out);
    return result;
}

static PyMethodDef module_functions[] = {
    {"hash_form", (PyCFunction)hash_form, METH_O, hash_form_doc},
    {NULL, NULL, 0, NULL},
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
    .m_doc = "Word passes in C for matching, seed similarity, language detection and content "
             "hashes (the references: monitor.match, monitor.similarity, monitor.lang, "
             "monitor.normalize).",
    .m_size = -1,
    .m_methods = module_functions,
};

PyMODINIT_FUNC PyInit__wordscan(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (add_type(m, "Scanner", &ScannerType) < 0 || add_type(m, "TermCounter", &TermCounterType) < 0
        || add_type(m, "WordTally", &WordTallyType) < 0
        || add_type(m, "SeedScorer", &SeedScorerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
