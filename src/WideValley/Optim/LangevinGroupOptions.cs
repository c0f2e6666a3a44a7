using System.Globalization;

namespace WideValley.Optim;

/// <summary>
/// Per-parameter-group overrides of the Langevin settings of a local-entropy optimizer: each value left null takes the
/// optimizer's <see cref="LocalEntropyOptions"/>. The outer learning rate, momentum and weight decay of a group are its
/// base optimizer's options (SGD's or Adam's), as with torch.optim.
/// </summary>
public sealed record LangevinGroupOptions
{
    /// <summary>eta', the Langevin step size of this group's parameters.</summary>
    public double? LangevinLr { get; init; }
    /// <summary>eps, the thermal noise of this group's parameters (scaled as the optimizer's NoiseScaling says).</summary>
    public double? Noise { get; init; }
    /// <summary>The scope gamma(t) that couples this group's Langevin iterates to its weights.</summary>
    public ScopeSchedule? Scope { get; init; }
    /// <summary>L2 weight decay added to this group's loss gradient inside the Langevin loop.</summary>
    public double? LangevinWeightDecay { get; init; }

    /// <summary>True when every value is inherited.</summary>
    public bool IsEmpty => LangevinLr is null && Noise is null && Scope is null && LangevinWeightDecay is null;

    /// <summary>The optimizer's options with this group's overrides applied, validated; errors name the group.</summary>
    internal LocalEntropyOptions Apply(LocalEntropyOptions options, int group)
    {
        var merged = options with
        {
            LangevinLr = LangevinLr ?? options.LangevinLr,
            Noise = Noise ?? options.Noise,
            Scope = Scope ?? options.Scope,
            LangevinWeightDecay = LangevinWeightDecay ?? options.LangevinWeightDecay,
        };
        try { merged.Validate(); }
        catch (ArgumentException e) { throw new ArgumentException($"parameter group {group}: {e.Message}", e); }
        return merged;
    }

    internal void Save(BinaryWriter writer)
    {
        static void Write(BinaryWriter w, double? value)
        {
            w.Write(value.HasValue);
            if (value.HasValue) w.Write(value.Value);
        }
        Write(writer, LangevinLr);
        Write(writer, Noise);
        Write(writer, LangevinWeightDecay);
        writer.Write(Scope?.Spec ?? "");
    }

    internal static LangevinGroupOptions? Load(BinaryReader reader)
    {
        static double? Read(BinaryReader r) => r.ReadBoolean() ? r.ReadDouble() : null;
        var lr = Read(reader);
        var noise = Read(reader);
        var decay = Read(reader);
        var scope = reader.ReadString();
        var options = new LangevinGroupOptions
        {
            LangevinLr = lr, Noise = noise, LangevinWeightDecay = decay,
            Scope = scope.Length == 0 ? null : ScopeSchedule.Parse(scope),
        };
        return options.IsEmpty ? null : options;
    }

    /// <inheritdoc/>
    public override string ToString()
    {
        var c = CultureInfo.InvariantCulture;
        var parts = new List<string>();
        if (LangevinLr is { } lr) parts.Add(string.Create(c, $"langevin_lr={lr}"));
        if (Noise is { } noise) parts.Add(string.Create(c, $"noise={noise}"));
        if (Scope is { } scope) parts.Add($"scope={scope.Spec}");
        if (LangevinWeightDecay is { } wd) parts.Add(string.Create(c, $"langevin_weight_decay={wd}"));
        return parts.Count == 0 ? "(inherited)" : string.Join(", ", parts);
    }
}

/// <summary>
/// A parameter group of a local-entropy optimizer that carries its own Langevin settings
/// (<see cref="EntropySgd.ParamGroup"/>, <see cref="EntropyAdam.ParamGroup"/>). Groups of other types take the
/// optimizer's settings.
/// </summary>
public interface ILocalEntropyParamGroup
{
    /// <summary>This group's overrides of the optimizer's Langevin settings; null inherits all of them.</summary>
    LangevinGroupOptions? Langevin { get; set; }
}
