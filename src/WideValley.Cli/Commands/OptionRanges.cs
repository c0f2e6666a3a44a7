using System.CommandLine;
using System.CommandLine.Parsing;

namespace WideValley.Cli.Commands;

/// <summary>
/// The allowed range of every numeric option, checked at parse time (System.CommandLine validators), so that a value
/// out of range is refused with exit code 2 before anything is loaded or written, by a message that names the flag,
/// the value and the range. One table keyed by flag name serves every command (a flag means the same thing
/// wherever it appears); every floating-point option must also be finite. The library checks the same settings again
/// (<see cref="Training.RunSetup.Validate"/>, the options records' <c>Validate</c>) for callers that do not come
/// through the command line.
/// </summary>
public static class OptionRanges
{
    /// <summary>
    /// Most libtorch threads (and exact-Hessian workers) accepted: 4 per logical core. More only oversubscribes the
    /// cores (100,000 threads made libtorch start 9,546 of them and print nothing for minutes).
    /// </summary>
    public static int MaxThreads => Training.RunSetup.MaxThreads;

    /// <summary>Most Langevin steps per outer step (the paper uses 5 to 20; beyond this a single step runs for hours).</summary>
    public const int MaxLangevinSteps = 10_000;

    /// <summary>One allowed range: a test and the words that say it ("at least 1", "in [0, 1)").</summary>
    sealed record Range(Func<double, bool> Allows, string Says)
    {
        /// <summary>What to say for a value below the range, when that differs from <see cref="Says"/>.</summary>
        public string? SaysBelow { get; init; }

        /// <summary>The lowest allowed value, for <see cref="SaysBelow"/>.</summary>
        public double Lowest { get; init; } = double.NegativeInfinity;

        public string For(double value) => value < Lowest && SaysBelow is not null ? SaysBelow : Says;
    }

    static Range AtLeast(long minimum, string? note = null) => new(v => v >= minimum, $"at least {minimum}{note}");
    static readonly Range Positive = new(v => v > 0, "a positive number");
    static readonly Range NonNegative = new(v => v >= 0, "zero or positive");
    static readonly Range HalfOpenUnit = new(v => v >= 0 && v < 1, "in [0, 1)");
    static readonly Range OpenUnit = new(v => v > 0 && v < 1, "in (0, 1)");
    static readonly Range HalfOpenUnitAbove = new(v => v > 0 && v <= 1, "in (0, 1]");

    /// <summary>The table: flag name to range. Flags not listed are only required to be finite (when floating point).</summary>
    static Dictionary<string, Range> Table() => new()
    {
        // The lower bounds of these two are each command's own (their messages predate this table).
        ["--threads"] = new(v => v >= 0 && v <= MaxThreads, $"at most {MaxThreads} (4 x this machine's {Environment.ProcessorCount} logical cores; 0 = libtorch's default)")
        {
            Lowest = 0, SaysBelow = "0 (libtorch's default) or positive",
        },
        ["--workers"] = new(v => v <= MaxThreads, $"at most {MaxThreads} (4 x this machine's {Environment.ProcessorCount} logical cores)"),
        ["-L"] = new(v => v <= MaxLangevinSteps, $"at most {MaxLangevinSteps:N0} (Langevin steps per outer step)"),
        ["--batch-size"] = AtLeast(1),
        ["--eval-batch-size"] = AtLeast(1),
        ["--epochs"] = AtLeast(1),
        ["--samples"] = AtLeast(1),
        ["--probes"] = AtLeast(1),
        ["--steps"] = AtLeast(1),
        ["--evaluations"] = AtLeast(1),
        ["--top"] = AtLeast(1),
        ["--seeds"] = AtLeast(1),
        ["--rounds"] = AtLeast(1),
        ["--hidden-size"] = AtLeast(1),
        ["--layers"] = AtLeast(1),
        ["--unroll"] = AtLeast(1),
        ["--max-train-samples"] = AtLeast(1),
        ["--points"] = AtLeast(2),
        ["--warmup"] = AtLeast(0),
        ["--validation-size"] = AtLeast(0, " (0 = none)"),
        ["--bn-recalibrate-batches"] = AtLeast(0, " (0 = a full pass)"),
        ["--diagnostics-every"] = AtLeast(0, " (0 = off)"),
        ["--dataloader-batches"] = AtLeast(0),
        ["--lr"] = Positive,
        ["--langevin-lr"] = Positive,
        ["--sgld-lr"] = Positive,
        ["--adam-eps"] = Positive,
        ["--effective-epochs"] = Positive,
        ["--memory-limit"] = Positive,
        ["--clip-grad-norm"] = new(v => v >= 0, "0 (off) or a positive number"),
        ["--weight-decay"] = NonNegative,
        ["--langevin-weight-decay"] = NonNegative,
        ["--noise"] = NonNegative,
        ["--gamma"] = NonNegative,
        ["--scoping"] = NonNegative,
        ["--sgld-decay"] = NonNegative,
        ["--sgld-temperature"] = NonNegative,
        ["--temperature"] = new(v => v > 0, "positive"),
        ["--momentum"] = HalfOpenUnit,
        ["--langevin-momentum"] = HalfOpenUnit,
        ["--beta1"] = HalfOpenUnit,
        ["--beta2"] = HalfOpenUnit,
        ["--dropout"] = HalfOpenUnit,
        ["--input-dropout"] = HalfOpenUnit,
        ["--alpha"] = HalfOpenUnitAbove,
        ["--tolerance"] = OpenUnit,
        ["--field-size"] = NonNegative,
        ["--field-power"] = Positive,
        ["--field-decay"] = HalfOpenUnitAbove,
        ["--field-anneal-steps"] = AtLeast(1),
        ["--momentum-high"] = Positive,
        ["--momentum-low"] = HalfOpenUnit,
        ["--switch-window"] = AtLeast(1),
        ["--switch-tolerance"] = NonNegative,
        ["--velocity-cap"] = NonNegative,
        ["--dante-steps-per-block"] = AtLeast(0, " (0 = one epoch's steps)"), ["--dante-eps"] = Positive, ["--dante-lr"] = Positive,
        ["--perturb-gradient"] = Positive,
        ["--perturb-radius"] = Positive,
        ["--perturb-interval"] = AtLeast(1),
        ["--perturb-decrease"] = NonNegative,
        ["--rho"] = NonNegative, ["--asam-eta"] = NonNegative,
        ["--elastic-rho"] = NonNegative, ["--elastic-rho-growth"] = NonNegative, ["--elastic-rho-max"] = Positive, ["--gamma-max"] = Positive,
        ["--n"] = AtLeast(2, " (spins of a spin glass)"),
        ["--starts"] = AtLeast(1),
        ["--p"] = AtLeast(2, " (order of a spin glass)"),
        ["--network-count"] = AtLeast(1),
        ["--anneal-stages"] = AtLeast(1),
        ["--field-directions"] = AtLeast(1),
        ["--overlap"] = HalfOpenUnitAbove,
        ["--level"] = Positive,
        ["--grid"] = AtLeast(1),
        ["--depth"] = AtLeast(1),
        ["--accept"] = new(v => v >= 1, "at least 1 (the factor m of m x L0)"),
        ["--bends"] = AtLeast(1),
        ["--bead-lr"] = Positive,
        ["--bead-max-steps"] = AtLeast(1),
        ["--check-every"] = AtLeast(1),
        ["--bn-minibatches"] = NonNegative,
    };

    /// <summary>
    /// Adds the range checks to every numeric option of <paramref name="command"/> and its subcommands; returns the
    /// command. Options are checked when given on the command line (defaults are in range by construction).
    /// </summary>
    public static Command WithRanges(this Command command)
    {
        var table = Table();
        Apply(command, table);
        return command;
    }

    static void Apply(Command command, Dictionary<string, Range> table)
    {
        foreach (var option in command.Options)
        {
            var range = table.GetValueOrDefault(option.Name);
            switch (option)
            {
                case Option<int> o: o.Validators.Add(r => Check(r, range, floating: false, () => r.GetValueOrDefault<int>())); break;
                case Option<int?> o: o.Validators.Add(r => Check(r, range, floating: false, () => r.GetValueOrDefault<int?>())); break;
                case Option<long> o: o.Validators.Add(r => Check(r, range, floating: false, () => r.GetValueOrDefault<long>())); break;
                case Option<long?> o: o.Validators.Add(r => Check(r, range, floating: false, () => r.GetValueOrDefault<long?>())); break;
                case Option<double> o: o.Validators.Add(r => Check(r, range, floating: true, () => r.GetValueOrDefault<double>())); break;
                case Option<double?> o: o.Validators.Add(r => Check(r, range, floating: true, () => r.GetValueOrDefault<double?>())); break;
            }
        }
        foreach (var sub in command.Subcommands) Apply(sub, table);
    }

    static void Check(OptionResult result, Range? range, bool floating, Func<double?> read)
    {
        if (result.Implicit || result.Tokens.Count == 0) return;
        double? value;
        try
        {
            value = read();
        }
        catch (InvalidOperationException)
        {
            return; // the value did not parse; System.CommandLine reports that itself
        }
        if (value is not double v) return;
        var name = result.Option.Name;
        var text = result.Tokens[^1].Value;
        if (floating && !double.IsFinite(v))
        {
            result.AddError($"{name} {text} is not a finite number; {name} must be {(range is null ? "a finite number" : range.For(v))}");
            return;
        }
        if (range is not null && !range.Allows(v))
            result.AddError($"{name} must be {range.For(v)}, got {text}");
    }
}
