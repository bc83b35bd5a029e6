// ThreadSanitizer suppressions built into every executable of a TSan build (-DM2M_SANITIZE=thread),
// so that ctest, pytest and a hand-run binary all apply them without TSAN_OPTIONS. Only third-party
// code is suppressed; a race report with one of our frames in it that these hide would be a bug here.
extern "C" const char* __tsan_default_suppressions() {
  return
      // librdkafka (Debian's, uninstrumented) orders its own threads with atomic reference counts that
      // TSan cannot see, so it reports races between two of librdkafka's threads on librdkafka's own
      // memory, e.g. rdk:main destroying a topic's rwlock that rdk:broker read-locked before
      // (pthread_rwlock_destroy vs pthread_rwlock_rdlock, both called from librdkafka.so.1).
      "race:librdkafka.so.1\n";
}
