/// The two rounding rules of the integer engine, both round-half-to-even like the float quantizer
/// `q = round(x / s) + z`, so that an integer result equals the float simulation's code whenever the
/// float computation was exact.
public enum IntegerRounding {
    /// The largest magnitude a left shift saturates to (`2^62`): adding a zero point or a second operand
    /// can then never overflow `Int64`.
    public static let saturation: Int64 = 1 << 62

    /// `round_half_even(v / 2^n)` for `n > 0`, `v * 2^-n` (saturated to `±2^62`) for `n <= 0`.
    ///
    /// A value `v * 2^e_acc` requantized to a site of exponent `e_y` is `shift(v, right: e_y - e_acc)`
    /// in units of `2^e_y`. For `n > 0` the shift is an
    /// arithmetic shift (floor) plus one when the discarded bits are more than half, or exactly half and
    /// the floor is odd: `5 >> 1 = 2` (2.5), `7 >> 1 = 4` (3.5), `-5 >> 1 = -2`, `-7 >> 1 = -4`,
    /// `10 >> 2 = 2` (2.5), `14 >> 2 = 4` (3.5). Shifts past 62 bits give 0 (`|v| < 2^62`).
    @inlinable
    public static func shift(_ v: Int64, right n: Int) -> Int64 {
        if n <= 0 {
            if n == 0 || v == 0 { return v }
            let k = -n
            if k >= 62 { return v > 0 ? saturation : -saturation }
            let (product, overflow) = v.multipliedReportingOverflow(by: Int64(1) << k)
            if overflow || product > saturation || product < -saturation { return v > 0 ? saturation : -saturation }
            return product
        }
        if n > 62 { return 0 }
        let floor = v &>> Int64(n)
        let remainder = v & ((Int64(1) << n) - 1)
        let half = Int64(1) << (n - 1)
        return remainder > half || (remainder == half && floor & 1 == 1) ? floor + 1 : floor
    }

    /// `shift(v, right: n)` for `1 <= n <= 62` and `|v| < 2^62`, without branches (for vectorised epilogues):
    /// with `v = q0 * 2^n + r`, adding `2^(n-1) - 1 + (q0 & 1)` before the arithmetic shift carries into
    /// `q0` exactly when `r > 2^(n-1)`, or `r = 2^(n-1)` and `q0` is odd.
    @inlinable @inline(__always)
    public static func shiftBranchFree(_ v: Int64, right n: Int64) -> Int64 {
        (v &+ ((Int64(1) &<< (n &- 1)) &- 1) &+ ((v &>> n) & 1)) &>> n
    }

    /// `round_half_even(numerator / denominator)` for `denominator > 0`, exactly (integer division and
    /// remainder, no float): `7 / 2 = 4` (3.5), `5 / 2 = 2` (2.5), `-5 / 2 = -2`, `10 / 4 = 2` (2.5),
    /// `11 / 4 = 3` (2.75).
    @inlinable
    public static func divide(_ numerator: Int64, by denominator: Int64) -> Int64 {
        precondition(denominator > 0, "division by \(denominator)")
        var q = numerator / denominator, r = numerator % denominator
        if r < 0 { q -= 1; r += denominator }
        // 0 <= r < d; compare r with d - r (no overflow) to find the side of the half.
        let rest = denominator - r
        return r > rest || (r == rest && q & 1 == 1) ? q + 1 : q
    }

    /// The average of `sum` values at exponent `inputExponent` over `count` taps, in units of
    /// `2^outputExponent`: `round_half_even(sum * 2^(e_in - e_out) / count)`, computed as
    /// `divide(sum << (e_in - e_out), count)` when `e_in >= e_out` and `divide(sum, count << (e_out - e_in))`
    /// otherwise, so no bit is lost before the one rounding.
    @inlinable
    public static func average(_ sum: Int64, count: Int, inputExponent: Int, outputExponent: Int) -> Int64 {
        precondition(count > 0, "average over no taps")
        let d = inputExponent - outputExponent
        if d >= 0 { return divide(shift(sum, right: -d), by: Int64(count)) }
        let scaled = shift(Int64(count), right: d)
        return divide(sum, by: scaled)
    }
}
