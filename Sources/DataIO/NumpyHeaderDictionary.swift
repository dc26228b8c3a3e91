/// The dictionary in a `.npy` header, read as NumPy reads it: a Python dict literal holding exactly the keys
/// `'descr'` (a string), `'fortran_order'` (`True` or `False`) and `'shape'` (a tuple of non-negative
/// integers), each once, in any order, followed only by spaces and the newline that pads the header.
/// Anything else (a missing, unknown or repeated key, an unterminated literal, text after the dict) is an
/// error naming what is wrong, so no file is read with a meaning NumPy would not give it.
struct NumpyHeaderDictionary: Equatable {
    var descr: String
    var fortranOrder: Bool
    var shape: [Int]

    /// Arrays of more dimensions are refused (NumPy's own limit is 64).
    static let maxRank = 64

    struct Failure: Error {
        var reason: String
    }

    init(descr: String, fortranOrder: Bool, shape: [Int]) {
        (self.descr, self.fortranOrder, self.shape) = (descr, fortranOrder, shape)
    }

    init(parsing text: String) throws {
        var parser = Parser(Array(text.unicodeScalars))
        var descr: String?, fortranOrder: Bool?, shape: [Int]?
        try parser.expect("{")
        while true {
            parser.skipSpaces()
            if parser.take("}") { break }
            let key = try parser.string()
            try parser.expect(":")
            switch key {
            case "descr":
                guard descr == nil else { throw Failure(reason: "key 'descr' appears twice") }
                descr = try parser.string()
            case "fortran_order":
                guard fortranOrder == nil else { throw Failure(reason: "key 'fortran_order' appears twice") }
                fortranOrder = try parser.boolean()
            case "shape":
                guard shape == nil else { throw Failure(reason: "key 'shape' appears twice") }
                shape = try parser.tuple()
            default:
                throw Failure(reason: "unknown key '\(key)' (a .npy header has 'descr', 'fortran_order' and 'shape')")
            }
            parser.skipSpaces()
            if parser.take(",") { continue }
            try parser.expect("}")
            break
        }
        parser.skipSpaces()
        guard parser.atEnd else { throw Failure(reason: "text after the header's closing brace") }
        guard let descr else { throw Failure(reason: "header has no 'descr'") }
        guard let fortranOrder else { throw Failure(reason: "header has no 'fortran_order'") }
        guard let shape else { throw Failure(reason: "header has no shape") }
        self.descr = descr
        self.fortranOrder = fortranOrder
        self.shape = shape
    }

    /// A cursor over the header's characters.
    private struct Parser {
        let scalars: [Unicode.Scalar]
        var position = 0

        init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

        var atEnd: Bool { position == scalars.count }

        mutating func skipSpaces() {
            while position < scalars.count, scalars[position] == " " || scalars[position] == "\n" || scalars[position] == "\t" {
                position += 1
            }
        }

        /// Consumes `character` (after spaces) if it is next.
        mutating func take(_ character: Unicode.Scalar) -> Bool {
            skipSpaces()
            guard position < scalars.count, scalars[position] == character else { return false }
            position += 1
            return true
        }

        mutating func expect(_ character: Unicode.Scalar) throws {
            guard take(character) else {
                throw Failure(reason: atEnd ? "header ends where '\(character)' was expected"
                                            : "'\(scalars[position])' where '\(character)' was expected")
            }
        }

        /// A quoted string without escapes.
        mutating func string() throws -> String {
            skipSpaces()
            guard position < scalars.count, scalars[position] == "'" || scalars[position] == "\"" else {
                throw Failure(reason: "a quoted string was expected")
            }
            let quote = scalars[position]
            position += 1
            var result = String.UnicodeScalarView()
            while position < scalars.count, scalars[position] != quote {
                guard scalars[position] != "\\" else { throw Failure(reason: "escapes in header strings are not supported") }
                result.append(scalars[position])
                position += 1
            }
            guard position < scalars.count else { throw Failure(reason: "unterminated string in the header") }
            position += 1
            return String(result)
        }

        mutating func boolean() throws -> Bool {
            skipSpaces()
            for (word, value) in [("True", true), ("False", false)] {
                let letters = Array(word.unicodeScalars)
                if position + letters.count <= scalars.count, Array(scalars[position..<position + letters.count]) == letters {
                    position += letters.count
                    return value
                }
            }
            throw Failure(reason: "'fortran_order' must be True or False")
        }

        /// A tuple of non-negative integers below 2^31 (Python 2's `L` suffix allowed): `()`, `(3,)`, `(2, 3)`.
        mutating func tuple() throws -> [Int] {
            try expect("(")
            var values: [Int] = []
            while true {
                if take(")") { return values }
                skipSpaces()
                var digits = 0, value = 0
                while position < scalars.count, (48...57).contains(scalars[position].value) {
                    value = value * 10 + Int(scalars[position].value - 48)
                    digits += 1
                    position += 1
                    guard value < 1 << 31 else { throw Failure(reason: "a dimension of the shape is 2^31 or more") }
                }
                guard digits > 0 else {
                    throw Failure(reason: atEnd ? "unterminated shape" : "bad dimension starting at '\(scalars[position])'")
                }
                if position < scalars.count, scalars[position] == "L" { position += 1 }
                values.append(value)
                guard values.count <= NumpyHeaderDictionary.maxRank else {
                    throw Failure(reason: "the shape has more than \(NumpyHeaderDictionary.maxRank) dimensions")
                }
                if take(",") { continue }
                try expect(")")
                return values
            }
        }
    }
}
