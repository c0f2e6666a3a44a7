using System.CommandLine;
using WideValley.Cli.Commands.Reproduce;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley reproduce ...`: the seed papers' experiments (Entropy-SGD, Chaudhari et al. ICLR 2017; the loss
/// surfaces of Choromanska et al. 2015, spin glass and networks; AnnealSGD, Chaudhari and Soatto), each a subcommand
/// that trains or measures what it needs, keeps every finished piece on disk (an interrupted reproduction continues where it
/// stopped), and writes a Markdown report with plots.
/// </summary>
public static class ReproduceCommand
{
    public static Command Create(CliContext ctx)
    {
        var command = new Command("reproduce", "Reproduce the seed papers' experiments (Entropy-SGD; Choromanska et al.'s loss surfaces; AnnealSGD; Freeman & Bruna's level sets; seed 004: layerwise Hessian spectra, HTR, ADINE, DANTE, noise and rank, degenerate saddles; Parle over MPI ranks) and write reports (Markdown, PNG, JSON).");
        command.Add(Table1Command.Create(ctx));
        command.Add(HessianUniversalityCommand.Create(ctx));
        command.Add(LocalEntropyToyCommand.Create(ctx));
        command.Add(SgldBaselineCommand.Create(ctx));
        command.Add(SpinGlassCommand.Create(ctx));
        command.Add(LossSurfacesCommand.Create(ctx));
        command.Add(AnnealFieldCommand.Create(ctx));
        command.Add(AnnealSgdCommand.Create(ctx));
        command.Add(LevelSetsCommand.Create(ctx));
        command.Add(LayerwiseHessianCommand.Create(ctx));
        command.Add(DanteCommand.Create(ctx));
        command.Add(SaddlesCommand.Create(ctx));
        command.Add(HtrCommand.Create(ctx));
        command.Add(AdineCommand.Create(ctx));
        command.Add(NoiseRankCommand.Create(ctx));
        command.Add(WideValleysCommand.Create(ctx));
        command.Add(FlatMinimaCommand.Create(ctx));
        command.Add(ParleCommand.Create(ctx));
        return command.WithRanges();
    }
}
