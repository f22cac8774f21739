/*
 * check.h — the C tests' assertion and runner. CHECK counts checks and
 * failures, reports the failed condition with its line and goes on. A test
 * file lists its tests in a table of TEST(name) entries, one per
 * `static void test_<name>(void)`, and its main() calls run_tests:
 *
 *   static const cf_test tests[] = {TEST(fifo), TEST(abort)};
 *   int main(int argc, char **argv) { return RUN_TESTS(argc, argv, tests); }
 *
 * `prog` runs all in table order, `prog NAME...` the ones named,
 * `prog --reverse` all in reverse order, `prog --list` prints the names.
 * CMakeLists.txt reads the TEST(name) entries from the source to register
 * one ctest per name.
 */
#ifndef CF_TEST_CHECK_H
#define CF_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int failures, checks;

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    checks++;                                                                                      \
    if (!(cond)) {                                                                                 \
      failures++;                                                                                  \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                     \
    }                                                                                              \
  } while (0)

typedef struct cf_test {
  const char *name;
  void (*fn)(void);
} cf_test;

#define TEST(name)                                                                                 \
  { #name, test_##name }
#define RUN_TESTS(argc, argv, tests) run_tests(argc, argv, tests, sizeof tests / sizeof *tests)

static void run_one(const cf_test *t) {
  int before = failures;
  t->fn();
  if (failures != before) fprintf(stderr, "FAILED: %s\n", t->name);
}

static int run_tests(int argc, char **argv, const cf_test *tests, size_t n) {
  if (argc == 2 && strcmp(argv[1], "--list") == 0) {
    for (size_t i = 0; i < n; i++)
      printf("%s\n", tests[i].name);
    return 0;
  }
  if (argc <= 1 || (argc == 2 && strcmp(argv[1], "--reverse") == 0)) {
    int reverse = argc == 2;
    for (size_t i = 0; i < n; i++)
      run_one(&tests[reverse ? n - 1 - i : i]);
  } else {
    for (int pass = 0; pass < 2; pass++) { /* names checked before any runs */
      for (int a = 1; a < argc; a++) {
        size_t i = 0;
        while (i < n && strcmp(tests[i].name, argv[a]) != 0)
          i++;
        if (i == n) {
          fprintf(stderr, "%s: no test named '%s' (--list prints them)\n", argv[0], argv[a]);
          return 2;
        }
        if (pass) run_one(&tests[i]);
      }
    }
  }
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}

#endif
