/// Runs `body` to its end even when the calling task is cancelled: for what a cancelled job must
/// still do on its way out, raising its `cancelled` alert (a hook process started from a
/// cancelled task would be stopped at once) and removing its record. Awaited at once, so it is
/// structured in effect: the caller waits for it and nothing outlives the call.
func uncancelled<T: Sendable>(_ body: @escaping @Sendable () async -> T) async -> T {
    await Task.detached(operation: body).value
}
