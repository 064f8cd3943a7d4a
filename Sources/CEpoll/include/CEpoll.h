#ifndef HAILUO_CEPOLL_H
#define HAILUO_CEPOLL_H

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC.
int hh_accept_nonblocking(int fd);

/// The number of CPUs this process may run on (sched_getaffinity), at least 1.
int hh_cpu_count(void);

/// epoll_event is packed on x86_64, so Swift cannot read its fields directly.
int hh_epoll_add(int epfd, int fd, uint32_t events, uint64_t data);
int hh_epoll_mod(int epfd, int fd, uint32_t events, uint64_t data);
int hh_epoll_del(int epfd, int fd);
/// Waits for up to `max` events; fills `evs` and `datas` side by side.
int hh_epoll_wait(int epfd, uint32_t *evs, uint64_t *datas, int max, int timeout_ms);

static const uint32_t HH_EPOLLIN = EPOLLIN;
static const uint32_t HH_EPOLLOUT = EPOLLOUT;
static const uint32_t HH_EPOLLRDHUP = EPOLLRDHUP;
static const uint32_t HH_EPOLLHUP = EPOLLHUP;
static const uint32_t HH_EPOLLERR = EPOLLERR;
static const uint32_t HH_EPOLLET = EPOLLET;
static const uint32_t HH_EPOLLEXCLUSIVE = EPOLLEXCLUSIVE;

#endif
