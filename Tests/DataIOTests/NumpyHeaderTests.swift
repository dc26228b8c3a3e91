@testable import DataIO
import Foundation
import XCTest

/// The `.npy` header dictionary is read as NumPy reads it (`numpy.lib.format`): exactly the three keys, once
/// each, in any order; anything else is refused with the reason.
final class NumpyHeaderTests: XCTestCase {
    func testHeadersNumPyWritesOrAccepts() throws {
        let cases: [(String, NumpyHeaderDictionary)] = [
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }          \n",
             NumpyHeaderDictionary(descr: "<f4", fortranOrder: false, shape: [2, 3])),
            ("{'shape': (5,), 'fortran_order': True, 'descr': '|u1'}\n",
             NumpyHeaderDictionary(descr: "|u1", fortranOrder: true, shape: [5])),
            ("{\"descr\": \"<i8\", \"fortran_order\": False, \"shape\": ()}", NumpyHeaderDictionary(descr: "<i8", fortranOrder: false, shape: [])),
            ("{'descr': '<f8', 'fortran_order': False, 'shape': (3L, 4L), }\n", NumpyHeaderDictionary(descr: "<f8", fortranOrder: false, shape: [3, 4])),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(try NumpyHeaderDictionary(parsing: text), expected, text)
        }
    }

    func testMalformedHeadersAreRefusedWithTheReason() {
        let cases: [(String, String)] = [
            ("{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (2,)}", "'descr' appears twice"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'shape': (3,)}", "'shape' appears twice"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", "unknown key 'extra'"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", "ends where '}' was expected"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk", "text after"),
            ("{'descr': '<f4', 'shape': (2,)}", "no 'fortran_order'"),
            ("{'descr': '<f4', 'fortran_order': False}", "no shape"),
            ("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", "True or False"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 2)}", "bad dimension"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3}", "')' was expected"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2147483648,)}", "2^31"),
            ("{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}", "'f' where '}' was expected"),
            ("{'descr': '<f\\x34', 'fortran_order': False, 'shape': (2,)}", "escapes"),
            ("['descr', '<f4']", "'[' where '{' was expected"),
        ]
        for (text, phrase) in cases {
            XCTAssertThrowsError(try NumpyHeaderDictionary(parsing: text), text) { error in
                let reason = (error as? NumpyHeaderDictionary.Failure)?.reason ?? "\(error)"
                XCTAssertTrue(reason.contains(phrase), "\(text): \(reason)")
            }
        }
    }

    /// `.npy` bytes with header dictionary `text` and `payload` zero bytes.
    func file(_ text: String, payload: Int) -> Data {
        let padded = text + String(repeating: " ", count: (64 - (10 + text.utf8.count + 1) % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(padded.utf8.count), 0])
        data.append(contentsOf: Array(padded.utf8))
        data.append(Data(count: payload))
        return data
    }

    /// A file with a duplicated key is refused by the reader, naming the file.
    func testReaderRefusesDuplicatedKey() throws {
        XCTAssertThrowsError(try NumpyFile.parseHeader(file("{'descr': '<f4', 'descr': '<i4', 'fortran_order': False, 'shape': (1,), }", payload: 4),
                                                       path: "dup.npy")) { error in
            XCTAssertEqual(error as? DataError, .malformedNumpy(path: "dup.npy", reason: "key 'descr' appears twice"))
        }
    }

    /// A shape whose element count fits in 64 bits but whose byte count does not (found by the fuzzer).
    func testShapeWhoseByteCountOverflowsIsRefused() throws {
        let text = "{'descr': '<i8', 'fortran_order': False, 'shape': (1000, 99999999, 19999999), }"
        XCTAssertThrowsError(try NumpyFile.parseHeader(file(text, payload: 8), path: "huge.npy")) { error in
            guard case .malformedNumpy(_, let reason)? = error as? DataError else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("more than 2^63 bytes"), reason)
        }
    }
}
