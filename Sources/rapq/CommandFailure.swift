/// A failure found while a command runs (not a bad option), reported as `Error: <message>` with exit status 1
/// and without the usage text that `ValidationError` prints.
struct CommandFailure: Error, CustomStringConvertible {
    /// What went wrong and what to do.
    let description: String

    init(_ description: String) { self.description = description }
}
