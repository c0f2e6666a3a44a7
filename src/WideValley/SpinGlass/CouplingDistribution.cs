namespace WideValley.SpinGlass;

/// <summary>The law of the independent couplings X_{i1..ip} of a spherical p-spin glass.</summary>
public enum CouplingDistribution
{
    /// <summary>Standard normal N(0, 1): the model of Choromanska et al. 2015 and SAGUN's default.</summary>
    Gaussian,

    /// <summary>±1 with probability ½ each (mean 0, variance 1: the same normalisation; one of SAGUN's options).</summary>
    Bernoulli,
}
