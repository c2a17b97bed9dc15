/* Keeps the helper library non-empty. */
typedef int sigil_testhelpers_empty_unit;
