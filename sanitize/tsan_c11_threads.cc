// Linked into every executable of a ThreadSanitizer build (-DM2M_SANITIZE=thread), nowhere else.
//
// Debian's librdkafka creates its threads and locks its mutexes with the C11 <threads.h> functions.
// glibc implements those by calling its internal pthread aliases, which neither GCC 12's nor clang
// 14's TSan runtime intercepts: a thread made by glibc's thrd_create is unknown to TSan, and the
// first malloc on it crashes in TSan's allocator (SEGV in SizeClassAllocator64LocalCache::Allocate
// on a "rdk:main" or "rdk:mock" thread). An executable's definitions come before libc's, so these
// replace glibc's for librdkafka and route each call through the public pthread function, which TSan
// intercepts: the threads are registered, and TSan sees librdkafka's locks and joins as
// synchronization instead of reporting false races between our code and librdkafka's threads.
//
// Only what librdkafka 2.0 imports (nm -D --undefined-only librdkafka.so.1) is replaced; glibc
// defines mtx_t, cnd_t and once_flag as pthread_mutex_t, pthread_cond_t and pthread_once_t in
// unions of the same size, and its own implementations cast them the same way.
#include <pthread.h>
#include <threads.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>

namespace {

struct Start {
  thrd_start_t func;
  void* arg;
};

void* RunC11Thread(void* p) {
  Start start = *static_cast<Start*>(p);
  std::free(p);
  return reinterpret_cast<void*>(static_cast<intptr_t>(start.func(start.arg)));
}

int C11Result(int pthread_error) {
  if (pthread_error == 0) return thrd_success;
  if (pthread_error == ENOMEM || pthread_error == EAGAIN) return thrd_nomem;
  return thrd_error;
}

pthread_mutex_t* Native(mtx_t* m) { return reinterpret_cast<pthread_mutex_t*>(m); }
pthread_cond_t* Native(cnd_t* c) { return reinterpret_cast<pthread_cond_t*>(c); }

}  // namespace

extern "C" {

int thrd_create(thrd_t* thr, thrd_start_t func, void* arg) {
  auto* start = static_cast<Start*>(std::malloc(sizeof(Start)));
  if (start == nullptr) return thrd_nomem;
  *start = {func, arg};
  int err = pthread_create(thr, nullptr, RunC11Thread, start);
  if (err != 0) std::free(start);
  return C11Result(err);
}

int thrd_join(thrd_t thr, int* res) {
  void* value = nullptr;
  int err = pthread_join(thr, &value);
  if (err == 0 && res != nullptr) *res = static_cast<int>(reinterpret_cast<intptr_t>(value));
  return C11Result(err);
}

int mtx_init(mtx_t* m, int type) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  if (type & mtx_recursive) pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  int err = pthread_mutex_init(Native(m), &attr);
  pthread_mutexattr_destroy(&attr);
  return C11Result(err);
}

int mtx_lock(mtx_t* m) { return C11Result(pthread_mutex_lock(Native(m))); }
int mtx_unlock(mtx_t* m) { return C11Result(pthread_mutex_unlock(Native(m))); }
void mtx_destroy(mtx_t* m) { pthread_mutex_destroy(Native(m)); }

int cnd_init(cnd_t* c) { return C11Result(pthread_cond_init(Native(c), nullptr)); }
int cnd_signal(cnd_t* c) { return C11Result(pthread_cond_signal(Native(c))); }
int cnd_broadcast(cnd_t* c) { return C11Result(pthread_cond_broadcast(Native(c))); }
int cnd_wait(cnd_t* c, mtx_t* m) { return C11Result(pthread_cond_wait(Native(c), Native(m))); }
int cnd_timedwait(cnd_t* __restrict c, mtx_t* __restrict m, const struct timespec* __restrict until) {
  int err = pthread_cond_timedwait(Native(c), Native(m), until);  // both measure TIME_UTC (CLOCK_REALTIME)
  return err == ETIMEDOUT ? thrd_timedout : C11Result(err);
}
void cnd_destroy(cnd_t* c) { pthread_cond_destroy(Native(c)); }

void call_once(once_flag* flag, void (*func)(void)) {
  pthread_once(reinterpret_cast<pthread_once_t*>(flag), func);
}

}  // extern "C"
