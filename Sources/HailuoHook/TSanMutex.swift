#if TSAN_VISIBLE_LOCKS
import HTTPServer
/// ThreadSanitizer builds only: the engine's pthread-backed lock (see HTTPServer/TSanMutex.swift).
typealias Mutex = HTTPServer.Mutex
#endif
