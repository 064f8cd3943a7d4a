#if TSAN_VISIBLE_LOCKS
import Glibc

/// Only in ThreadSanitizer builds (`-Xswiftc -DTSAN_VISIBLE_LOCKS`, see .ci/run):
/// a lock of `Synchronization.Mutex`'s shape on `pthread_mutex`, which TSan
/// intercepts. The standard library's Mutex locks with futexes inside
/// uninstrumented code, so TSan sees no ordering through it and reports every
/// value it guards as a race (checked with a 12-line program on Swift 6.3.1).
/// A module-local type wins over the imported one, so the code that says
/// `Mutex` gets this lock in TSan builds and the standard one otherwise.
public final class Mutex<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    public init(_ initialValue: Value) {
        value = initialValue
        pthread_mutex_init(lock, nil)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    public func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body(&value)
    }
}
#endif
