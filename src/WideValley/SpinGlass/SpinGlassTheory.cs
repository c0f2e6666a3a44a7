namespace WideValley.SpinGlass;

/// <summary>
/// The large-N landscape of the spherical p-spin glass (Auffinger, Ben Arous and Černý, as restated by Choromanska et
/// al. 2015, Sec. 4 and Thm 4.1): the energy barrier E∞(p), the complexity functions Θ_p(u) and Θ_{k,p}(u), and the
/// layer boundaries E_k(p). Energies u are per spin: a critical value of L is N·u, so the band of minima is
/// (−N·E_0, −N·E∞). All float64.
/// </summary>
/// <remarks>
/// With C_N(u) the number of critical values below N·u and C_{N,k}(u) those of index k, (1/N) log E[C_N(u)] → Θ_p(u)
/// and (1/N) log E[C_{N,k}(u)] → Θ_{k,p}(u). Θ_{k,p}(−E_k) = 0 defines E_k, with E_0 &gt; E_1 &gt; … → E∞: only
/// minima lie in (−N·E_0, −N·E_1), minima and index-1 saddles in (−N·E_1, −N·E_2), and so on.
/// For p = 2 the complexity is never positive (½ log 1 = 0 and the (p−2) terms vanish): E_k(2) = E∞(2) = √2, the
/// edge of the semicircle.
/// </remarks>
public static class SpinGlassTheory
{
    /// <summary>Left end of the bracket of the root finding for E_k (the notes' bisection interval (−5, −E∞)).</summary>
    const double LowestEnergyPerSpin = -5;

    /// <summary>The energy barrier E∞(p) = 2·√((p−1)/p): high-index saddles lie only above −N·E∞.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="p"/> below 2.</exception>
    public static double EnergyBarrier(int p)
    {
        CheckOrder(p);
        return 2 * Math.Sqrt((p - 1.0) / p);
    }

    /// <summary>
    /// The rate function I(u) = −(u/E∞²)·√(u² − E∞²) − log(−u + √(u² − E∞²)) + log E∞ for u ≤ −E∞ (0 at u = −E∞,
    /// growing as u decreases).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="p"/> below 2, or <paramref name="u"/> above −E∞(p) or not finite.</exception>
    public static double RateFunction(int p, double u)
    {
        var e = EnergyBarrier(p);
        if (!double.IsFinite(u) || u > -e)
            throw new ArgumentOutOfRangeException(nameof(u), u, $"SpinGlassTheory.RateFunction: I(u) is defined for u <= -E_inf({p}) = {-e:R}; got u = {u:R}.");
        var root = Math.Sqrt(Math.Max(0, u * u - e * e));
        return -(u / (e * e)) * root - Math.Log(-u + root) + Math.Log(e);
    }

    /// <summary>
    /// The complexity of all critical values below N·u: Θ_p(u) = ½ log(p−1) − (p−2)u²/(4(p−1)) − I(u) for u ≤ −E∞,
    /// without the −I(u) term for −E∞ ≤ u ≤ 0, and ½ log(p−1) for u ≥ 0 (CHOR Thm 4.1; continuous in u).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="p"/> below 2 or <paramref name="u"/> not finite.</exception>
    public static double Complexity(int p, double u)
    {
        CheckOrder(p);
        CheckEnergy(u);
        var constant = 0.5 * Math.Log(p - 1.0);
        if (u >= 0) return constant;
        var quadratic = constant - (p - 2.0) * u * u / (4 * (p - 1.0));
        return u <= -EnergyBarrier(p) ? quadratic - RateFunction(p, u) : quadratic;
    }

    /// <summary>
    /// The complexity of critical values of index k below N·u: Θ_{k,p}(u) = ½ log(p−1) − (p−2)u²/(4(p−1)) −
    /// (k+1)·I(u) for u ≤ −E∞, and the constant ½ log(p−1) − (p−2)/p for u ≥ −E∞.
    /// </summary>
    /// <remarks>
    /// The paper prints the constant branch as ½ log(p−1) − (p−2)/(4(p−1)), which does not meet the first branch at
    /// u = −E∞ although the paper calls the function continuous. Since I(−E∞) = 0, continuity needs
    /// ½ log(p−1) − (p−2)E∞²/(4(p−1)) = ½ log(p−1) − (p−2)/p: the printed form drops the factor E∞² = 4(p−1)/p.
    /// We use the continuous form. The E_k (roots below −E∞) do not depend on this branch.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="p"/> below 2, <paramref name="k"/> negative or <paramref name="u"/> not finite.</exception>
    public static double IndexComplexity(int p, int k, double u)
    {
        CheckOrder(p);
        CheckIndex(k);
        CheckEnergy(u);
        var constant = 0.5 * Math.Log(p - 1.0);
        var e = EnergyBarrier(p);
        if (u >= -e) return constant - (p - 2.0) / p;
        return constant - (p - 2.0) * u * u / (4 * (p - 1.0)) - (k + 1) * RateFunction(p, u);
    }

    /// <summary>
    /// E_k(p): the root of Θ_{k,p}(−E_k) = 0 below −E∞, found by bisection on (−5, −E∞) to round-off. E_0(p) is the
    /// ground-state energy per spin (the paper calls it "some real number"); E_0(3) = 1.656998.
    /// For p = 2 there is no root below −E∞ and E∞(2) = √2 is returned (the complexity is 0 there).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="p"/> below 2 or <paramref name="k"/> negative.</exception>
    public static double LayerEnergy(int p, int k)
    {
        CheckOrder(p);
        CheckIndex(k);
        var e = EnergyBarrier(p);
        if (p == 2) return e;
        // Θ_k is negative at -5 (I grows like u²/E∞², faster than the quadratic term) and
        // ½ log(p−1) − (p−2)/p > 0 at −E∞ for every p ≥ 3, so the bracket holds a sign change.
        double low = LowestEnergyPerSpin, high = -e;
        var lowValue = IndexComplexity(p, k, low);
        if (lowValue >= 0)
            throw new InvalidOperationException($"SpinGlassTheory.LayerEnergy: Theta_{{{k},{p}}}(-5) = {lowValue:R} is not negative; the root lies below the bracket.");
        for (var i = 0; i < 200 && high - low > 0; i++)
        {
            var mid = 0.5 * (low + high);
            if (mid <= low || mid >= high) break;
            if (IndexComplexity(p, k, mid) < 0) low = mid; else high = mid;
        }
        return -0.5 * (low + high);
    }

    /// <summary>E_0(p), the ground-state energy per spin (the lowest critical values are near −N·E_0).</summary>
    public static double GroundStateEnergy(int p) => LayerEnergy(p, 0);

    static void CheckOrder(int p)
    {
        if (p < 2) throw new ArgumentOutOfRangeException(nameof(p), p, $"SpinGlassTheory: the order p of the spin glass must be at least 2; got {p}.");
    }

    static void CheckIndex(int k)
    {
        if (k < 0) throw new ArgumentOutOfRangeException(nameof(k), k, $"SpinGlassTheory: the index k must be 0 or more; got {k}.");
    }

    static void CheckEnergy(double u)
    {
        if (!double.IsFinite(u)) throw new ArgumentOutOfRangeException(nameof(u), u, $"SpinGlassTheory: the energy per spin u must be finite; got {u}.");
    }
}
