import DataIO
import Foundation
import XCTest

/// Inputs the fuzzer (`fuzz/run.sh`) found crashing, kept in `fuzz/regressions/`: each must now be refused
/// with an error.
final class FuzzRegressionTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fuzz/regressions")

    /// A `.npy` header whose shape's element count fits in 64 bits but whose byte count does not: the
    /// size check computed the byte count for its message unchecked and trapped. (The header is also
    /// malformed, which the reader now finds first; `NumpyHeaderTests` checks the byte count on a
    /// well-formed header.)
    func testNumpyShapeWhoseByteCountOverflows() throws {
        let url = Self.folder.appendingPathComponent("npy-byte-count-overflow.npy")
        XCTAssertThrowsError(try NumpyFile.readTensor(contentsOf: url)) { error in
            guard case .malformedNumpy? = error as? DataError else { return XCTFail("\(error)") }
        }
    }
}
