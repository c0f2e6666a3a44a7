using System.CommandLine;
using WideValley.Models;

namespace WideValley.Cli.Commands;

/// <summary>`widevalley models`: the paper's networks with their parameter counts.</summary>
public static class ModelsCommand
{
    public static Command Create(CliContext ctx)
    {
        var command = new Command("models", "List the paper's networks with their parameter counts (language models at the paper's vocabulary).");
        command.SetAction(_ =>
        {
            foreach (var name in ModelZoo.Names)
            {
                var info = ModelZoo.Describe(name);
                var options = new ModelOptions
                {
                    InputChannels = name == "allcnn" ? 3 : 1,
                    ImageSize = name == "allcnn" ? 32 : 28,
                    VocabularySize = name switch { "ptb-lstm" or "ptb-small-lstm" => 10_000, "small-char-lstm" => 96, "char-lstm" => 87, _ => null },
                };
                using var model = ModelZoo.Create(name, options);
                ctx.Out.WriteLine($"{name,-16} {ModelZoo.CountParameters(model),12:N0}  {info.Kind,-13}  {info.Description}");
            }
            return ExitCodes.Ok;
        });
        return command;
    }
}
