import DataIO
import Foundation
import XCTest

/// Inputs are opened only as regular files, outputs never overwrite inputs, and writes leave no temporary.
final class FileSafetyTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("rapq-files-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let folder { try? FileManager.default.removeItem(at: folder) }
    }

    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    func testRefusesFIFOFolderAndDeviceWithoutBlocking() throws {
        XCTAssertEqual(mkfifo(path("pipe"), 0o600), 0)
        let cases: [(String, String)] = [(path("pipe"), "a FIFO"), (folder.path, "a folder"), ("/dev/null", "a character device")]
        for (file, kind) in cases {
            XCTAssertThrowsError(try RegularFile.contents(of: URL(fileURLWithPath: file))) { error in
                XCTAssertEqual((error as? DataError).map { "\($0)" }, "'\(file)' is \(kind)\(kind == "a FIFO" ? " (named pipe)" : ""), not a regular file; give the path of a file")
            }
            XCTAssertThrowsError(try RegularFile.contents(of: URL(fileURLWithPath: file), offset: 0, length: 1))
        }
        XCTAssertThrowsError(try RegularFile.contents(of: URL(fileURLWithPath: path("absent")))) { error in
            guard case .unreadable(_, "no such file")? = error as? DataError else { return XCTFail("\(error)") }
        }
    }

    func testReadsRegularFilesAndRanges() throws {
        try Data([1, 2, 3, 4, 5]).write(to: URL(fileURLWithPath: path("five")))
        XCTAssertEqual(try RegularFile.contents(of: URL(fileURLWithPath: path("five"))), Data([1, 2, 3, 4, 5]))
        XCTAssertEqual(try RegularFile.contents(of: URL(fileURLWithPath: path("five")), offset: 1, length: 3), Data([2, 3, 4]))
        XCTAssertThrowsError(try RegularFile.contents(of: URL(fileURLWithPath: path("five")), offset: 3, length: 3)) { error in
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
        try Data().write(to: URL(fileURLWithPath: path("empty.npy")))
        XCTAssertThrowsError(try NumpyFile.readTensor(contentsOf: URL(fileURLWithPath: path("empty.npy")))) { error in
            XCTAssertTrue("\(error)".contains("the file is empty (0 bytes)"), "\(error)")
        }
    }

    func testOutputThatIsAnInputIsRefusedThroughLinks() throws {
        try Data("input".utf8).write(to: URL(fileURLWithPath: path("in.npy")))
        XCTAssertEqual(symlink(path("in.npy"), path("soft.npy")), 0)
        XCTAssertEqual(link(path("in.npy"), path("hard.npy")), 0)
        let inputs = [OutputConflict.Input("--data", path("in.npy"))]
        for output in [path("in.npy"), path("soft.npy"), path("hard.npy"), folder.path + "/./in.npy"] {
            XCTAssertThrowsError(try OutputConflict.check(output: output, role: "-o", against: inputs)) { error in
                guard case .outputIsInput(output, "-o", _, "--data")? = error as? DataError else { return XCTFail("\(error)") }
            }
        }
        XCTAssertNoThrow(try OutputConflict.check(output: path("new.npy"), role: "-o", against: inputs))
        try Data("other".utf8).write(to: URL(fileURLWithPath: path("other.npy")))
        XCTAssertNoThrow(try OutputConflict.check(output: path("other.npy"), role: "-o", against: inputs))
        XCTAssertThrowsError(try OutputConflict.check(folder: folder.path, role: "--save-codes", against: inputs))
        XCTAssertNoThrow(try OutputConflict.check(folder: path("sub"), role: "--save-codes", against: inputs))
    }

    /// An output that exists as a FIFO, a device or a folder, names a folder, or lies in a missing folder is
    /// refused before any work; the writer itself never renames over a FIFO (which would replace it by a file).
    func testOutputsThatAreNotFilesAreRefusedBeforeWork() throws {
        XCTAssertEqual(mkfifo(path("pipe.npy"), 0o600), 0)
        let cases: [(String, String)] = [(path("pipe.npy"), "a FIFO (named pipe)"), ("/dev/null", "a character device"), (folder.path, "a folder")]
        for (output, kind) in cases {
            XCTAssertThrowsError(try OutputConflict.check(output: output, role: "-o", against: [])) { error in
                guard case .notARegularFile(output, kind)? = error as? DataError else { return XCTFail("\(output): \(error)") }
            }
        }
        for output in [folder.path + "/sub/", path("absent/out.npy")] {
            XCTAssertThrowsError(try OutputConflict.check(output: output, role: "-o", against: [])) { error in
                guard case .unwritable? = error as? DataError else { return XCTFail("\(output): \(error)") }
            }
        }
        XCTAssertThrowsError(try AtomicFile.write(Data("x".utf8), to: URL(fileURLWithPath: path("pipe.npy"))))
        var info = stat()
        XCTAssertEqual(stat(path("pipe.npy"), &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFIFO, "the FIFO is still a FIFO")
    }

    func testAtomicWriteReplacesAndLeavesNoTemporary() throws {
        let url = URL(fileURLWithPath: path("out.bin"))
        try Data("old".utf8).write(to: url)
        try AtomicFile.write(Data("new".utf8), to: url)
        XCTAssertEqual(try Data(contentsOf: url), Data("new".utf8))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["out.bin"])
        XCTAssertThrowsError(try AtomicFile.write(Data(), to: URL(fileURLWithPath: path("absent/out.bin"))))
    }

    /// A full disk, simulated by a file-size limit: the write fails, the old file stays, no temporary remains.
    func testFailedWriteRemovesItsTemporary() throws {
        let url = URL(fileURLWithPath: path("out.bin"))
        try Data("old".utf8).write(to: url)
        var saved = rlimit()
        getrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved)
        let previousHandler = signal(SIGXFSZ, SIG_IGN)
        var small = saved
        small.rlim_cur = 4096
        XCTAssertEqual(setrlimit(Int32(RLIMIT_FSIZE.rawValue), &small), 0)
        XCTAssertThrowsError(try AtomicFile.write(Data(count: 100_000), to: url)) { error in
            guard case .unwritable? = error as? DataError else { return XCTFail("\(error)") }
        }
        setrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved)
        signal(SIGXFSZ, previousHandler)
        XCTAssertEqual(try Data(contentsOf: url), Data("old".utf8))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["out.bin"])
    }

    /// The temporary of a writer killed by SIGKILL is removed by the next write of that file; one of a live
    /// process is kept.
    func testStaleTemporaryOfADeadProcessIsRemoved() throws {
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try dead.run()
        dead.waitUntilExit()
        let stale = path(".out.bin.partial-\(dead.processIdentifier)-0"), live = path(".out.bin.partial-1-0")
        try Data("half".utf8).write(to: URL(fileURLWithPath: stale))
        try Data("half".utf8).write(to: URL(fileURLWithPath: live))
        try AtomicFile.write(Data("new".utf8), to: URL(fileURLWithPath: path("out.bin")))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted(), [".out.bin.partial-1-0", "out.bin"])
    }
}
