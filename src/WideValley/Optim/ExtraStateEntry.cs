using TorchSharp.Modules;

namespace WideValley.Optim;

/// <summary>Something with state beyond TorchSharp's per-group options and per-parameter state.</summary>
internal interface IStateOwner
{
    void Save(BinaryWriter writer);
    void Load(BinaryReader reader);
}

/// <summary>
/// Carries an optimizer's extra state (step counters, its own random generator) through TorchSharp's state-dictionary
/// machinery: <c>save_state_dict</c> serialises the options entries in order, so an optimizer whose
/// <c>state_dict()</c> appends this entry gets the state written and read back, both by TorchSharp's own
/// save/load and by WideValley checkpoints.
/// </summary>
internal sealed class ExtraStateEntry : OptimizerOptions
{
    public IStateOwner Owner { get; }

    public ExtraStateEntry(IStateOwner owner)
    {
        Owner = owner;
        LearningRate = 0; // unused, but TorchSharp's base class expects a value
    }

    public override void SaveStateDict(BinaryWriter writer) => Owner.Save(writer);
    public override void LoadStateDict(BinaryReader reader) => Owner.Load(reader);
    public override void LoadStateDict(OptimizerOptions source) => Copy(((ExtraStateEntry)source).Owner, Owner);

    public static void Copy(IStateOwner from, IStateOwner to)
    {
        if (ReferenceEquals(from, to)) return;
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) from.Save(w);
        stream.Position = 0;
        using var r = new BinaryReader(stream);
        to.Load(r);
    }

    /// <summary>Appends <paramref name="owner"/>'s state to <paramref name="sd"/> (an optimizer's <c>state_dict()</c>) and returns it.</summary>
    public static TorchSharp.torch.optim.Optimizer.StateDictionary Appended(TorchSharp.torch.optim.Optimizer.StateDictionary sd, IStateOwner owner)
    {
        sd.Options.Add(new ExtraStateEntry(owner));
        return sd;
    }

    /// <summary>
    /// An optimizer's <c>load_state_dict</c>: the trailing entry is split off while <paramref name="loadRest"/> (the
    /// base class's or wrapped optimizer's loader) reads the rest, put back whatever happens (the caller's dictionary
    /// is left as it was), and then copied into <paramref name="target"/>.
    /// </summary>
    public static void Load(TorchSharp.torch.optim.Optimizer.StateDictionary sd, string optimizer,
        Action<TorchSharp.torch.optim.Optimizer.StateDictionary> loadRest, IStateOwner target)
    {
        var entry = Take(sd, optimizer);
        try { loadRest(sd); }
        finally { sd.Options.Add(entry); }
        Copy(entry.Owner, target);
    }

    /// <summary>Splits the trailing entry off a state dictionary, or throws if it is not there.</summary>
    public static ExtraStateEntry Take(TorchSharp.torch.optim.Optimizer.StateDictionary sd, string optimizer)
    {
        var last = sd.Options.Count - 1;
        if (last < 0 || sd.Options[last] is not ExtraStateEntry entry)
            throw new ArgumentException($"this state dictionary was not produced by {optimizer}");
        sd.Options.RemoveAt(last);
        return entry;
    }
}
