namespace WideValley.Tests.Support;

/// <summary>Every file under a folder with its bytes: to show that a refused or failed command changed nothing.</summary>
public static class FolderSnapshot
{
    /// <summary>Each file's full path (recursively) and bytes.</summary>
    public static Dictionary<string, byte[]> Take(string folder) =>
        Directory.GetFiles(folder, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);

    /// <summary>Asserts that <paramref name="folder"/> holds the same files with the same bytes as <paramref name="before"/>.</summary>
    public static void AssertUnchanged(Dictionary<string, byte[]> before, string folder)
    {
        var after = Take(folder);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (file, bytes) in before)
            Assert.True(bytes.AsSpan().SequenceEqual(after[file]), $"{file} changed");
    }
}
