namespace WideValley.DeepLinear;

/// <summary>
/// The noise one network of a <see cref="DeepLinearNetworks"/> batch trains with: any combination of the kinds below,
/// each with its own scale and annealing; every draw is fresh at every step and independent of the others. Training
/// only: measurements (loss, product, spectrum) always use the clean network and clean data.
/// </summary>
public sealed record DeepLinearNoise
{
    /// <summary>No noise: plain gradient descent.</summary>
    public static DeepLinearNoise None { get; } = new();

    /// <summary>(a) Gradient noise: g_l + sigma_t * N(0, I) added to each layer's gradient (Neelakantan et al.).</summary>
    public NoiseSchedule Gradient { get; init; } = NoiseSchedule.None;

    /// <summary>
    /// (b) Architecture noise on the weights (the default architecture noise): the forward pass uses W_l ⊙ Xi_l with
    /// Xi_l entries i.i.d. N(1, s_t^2), fresh per step and per layer, shared by the samples of the step.
    /// </summary>
    public NoiseSchedule Weights { get; init; } = NoiseSchedule.None;

    /// <summary>
    /// (b') Architecture noise on the hidden activations: h_l ⊙ xi_l, xi_l i.i.d. N(1, s_t^2) per unit and per sample,
    /// on every hidden layer (not on the output).
    /// </summary>
    public NoiseSchedule Activations { get; init; } = NoiseSchedule.None;

    /// <summary>(c) Input noise: the network sees x + sigma_t * N(0, I); the target stays A x of the clean x.</summary>
    public NoiseSchedule Inputs { get; init; } = NoiseSchedule.None;

    /// <summary>(c) Output noise: the target is A x + sigma_t * N(0, I).</summary>
    public NoiseSchedule Outputs { get; init; } = NoiseSchedule.None;

    /// <summary>Whether any kind is active.</summary>
    public bool Any => Gradient.IsActive || Weights.IsActive || Activations.IsActive || Inputs.IsActive || Outputs.IsActive;

    /// <summary>Throws <see cref="ArgumentException"/> naming the kind with a bad schedule.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Gradient, nameof(Gradient));
        ArgumentNullException.ThrowIfNull(Weights, nameof(Weights));
        ArgumentNullException.ThrowIfNull(Activations, nameof(Activations));
        ArgumentNullException.ThrowIfNull(Inputs, nameof(Inputs));
        ArgumentNullException.ThrowIfNull(Outputs, nameof(Outputs));
        Gradient.Validate("gradient noise");
        Weights.Validate("weight noise");
        Activations.Validate("activation noise");
        Inputs.Validate("input noise");
        Outputs.Validate("output noise");
    }

    /// <summary>A short description listing the active kinds, e.g. "gradient 0.1/(1+t)^0.275".</summary>
    public override string ToString()
    {
        var parts = new List<string>();
        if (Gradient.IsActive) parts.Add($"gradient {Gradient}");
        if (Weights.IsActive) parts.Add($"weights {Weights}");
        if (Activations.IsActive) parts.Add($"activations {Activations}");
        if (Inputs.IsActive) parts.Add($"inputs {Inputs}");
        if (Outputs.IsActive) parts.Add($"outputs {Outputs}");
        return parts.Count == 0 ? "none" : string.Join(", ", parts);
    }
}
