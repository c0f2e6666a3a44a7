// Marks unmet symbol-version requirements of a shared library as weak, so that the dynamic loader accepts it.
//
// Why: TorchSharp 0.107's libLibTorchSharp.so lists GLIBCXX_3.4.32 among the versions it needs from libstdc++.so.6,
// but only for `_ZSt21ios_base_library_initv`, a no-op that GCC 13 emits. Debian 12 ships GLIBCXX_3.4.30, so the
// loader refuses the whole library. Setting VER_FLG_WEAK on that one Vernaux entry makes the loader treat the version
// as optional. We patch only the copy in a build output, only when the system library lacks the version, and only
// when every symbol bound to the version is on an allow-list; anything else is refused loudly.
//
// This file is compiled twice: by MSBuild's RoslynCodeTaskFactory (the task at the bottom; in a consumer's build from
// the WideValley package's buildTransitive folder) and into the WideValley library (with WIDEVALLEY_ELF_NO_MSBUILD
// defined, the types internal), where TorchRuntime uses it to explain a failed load of torch and the tests exercise the
// ELF logic directly. It targets the API surface of netstandard2.0, which is what the inline task factory compiles
// against.
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;

namespace WideValley.Build
{
    /// <summary>One Vernaux entry of .gnu.version_r: "this object needs version <c>Name</c> from <c>File</c>".</summary>
#if WIDEVALLEY_ELF_NO_MSBUILD
    internal
#else
    public
#endif
    sealed class ElfVersionNeed
    {
        public string File = "";
        public string Name = "";
        public ushort Flags;
        public ushort Index;
        /// <summary>Absolute file offset of the entry's vna_flags field.</summary>
        public long FlagsOffset;
        public bool IsWeak { get { return (Flags & ElfImage.VerFlagWeak) != 0; } }
    }

    /// <summary>What <see cref="ElfImage.WeakenUnmetNeeds"/> did to one library.</summary>
#if WIDEVALLEY_ELF_NO_MSBUILD
    internal
#else
    public
#endif
    sealed class ElfPatchOutcome
    {
        public readonly List<string> Weakened = new List<string>();
        public readonly List<string> AlreadyWeak = new List<string>();
        public readonly List<string> Satisfied = new List<string>();
        public readonly List<string> NotRequired = new List<string>();
        public bool Changed { get { return Weakened.Count > 0; } }
    }

    /// <summary>Minimal reader of the parts of a 64-bit little-endian ELF file that symbol versioning uses.</summary>
#if WIDEVALLEY_ELF_NO_MSBUILD
    internal
#else
    public
#endif
    sealed class ElfImage
    {
        public const ushort VerFlagWeak = 0x2;
        const uint ShtDynsym = 11;
        const uint ShtGnuVerdef = 0x6ffffffd;
        const uint ShtGnuVerneed = 0x6ffffffe;
        const uint ShtGnuVersym = 0x6fffffff;

        readonly byte[] _bytes;
        readonly string _path;
        readonly List<Section> _sections = new List<Section>();

        sealed class Section
        {
            public uint Type;
            public long Offset;
            public long Size;
            public uint Link;
            public uint Info;
            public long EntrySize;
        }

        public ElfImage(byte[] bytes, string path)
        {
            _bytes = bytes;
            _path = path;
            if (bytes.Length < 64 || bytes[0] != 0x7f || bytes[1] != (byte)'E' || bytes[2] != (byte)'L' || bytes[3] != (byte)'F')
                throw Bad("not an ELF file (missing \\x7fELF magic)");
            if (bytes[4] != 2) throw Bad("only 64-bit ELF files are supported (EI_CLASS=" + bytes[4] + ")");
            if (bytes[5] != 1) throw Bad("only little-endian ELF files are supported (EI_DATA=" + bytes[5] + ")");
            long shoff = (long)U64(0x28);
            int shentsize = U16(0x3A);
            int shnum = U16(0x3C);
            if (shentsize < 64) throw Bad("section header entries are " + shentsize + " bytes, expected 64");
            if (shoff <= 0 || shoff + (long)shnum * shentsize > bytes.Length)
                throw Bad("section header table (offset " + shoff + ", " + shnum + " entries) lies outside the file (" + bytes.Length + " bytes); the file is truncated");
            for (int i = 0; i < shnum; i++)
            {
                long at = shoff + (long)i * shentsize;
                var s = new Section
                {
                    Type = U32(at + 4),
                    Offset = (long)U64(at + 0x18),
                    Size = (long)U64(at + 0x20),
                    Link = U32(at + 0x28),
                    Info = U32(at + 0x2C),
                    EntrySize = (long)U64(at + 0x38),
                };
                if (s.Type != 8 /* SHT_NOBITS */ && s.Type != 0 && s.Offset + s.Size > bytes.Length)
                    throw Bad("section " + i + " (offset " + s.Offset + ", size " + s.Size + ") lies outside the file; the file is truncated");
                _sections.Add(s);
            }
        }

        public static ElfImage Load(string path)
        {
            return new ElfImage(System.IO.File.ReadAllBytes(path), path);
        }

        /// <summary>Every Vernaux entry of .gnu.version_r.</summary>
        public List<ElfVersionNeed> VersionNeeds()
        {
            var result = new List<ElfVersionNeed>();
            foreach (var sec in _sections.Where(s => s.Type == ShtGnuVerneed))
            {
                var strtab = _sections[(int)sec.Link];
                long at = sec.Offset;
                for (uint n = 0; n < sec.Info; n++)
                {
                    ushort count = U16(at + 2);
                    string file = Str(strtab, U32(at + 4));
                    long aux = at + U32(at + 8);
                    for (int k = 0; k < count; k++)
                    {
                        result.Add(new ElfVersionNeed
                        {
                            File = file,
                            Flags = U16(aux + 4),
                            Index = (ushort)(U16(aux + 6) & 0x7fff),
                            Name = Str(strtab, U32(aux + 8)),
                            FlagsOffset = aux + 4,
                        });
                        uint nextAux = U32(aux + 12);
                        if (nextAux == 0) break;
                        aux += nextAux;
                    }
                    uint next = U32(at + 12);
                    if (next == 0) break;
                    at += next;
                }
            }
            return result;
        }

        /// <summary>Names of the versions this object defines (.gnu.version_d), e.g. GLIBCXX_3.4.30 for libstdc++.</summary>
        public HashSet<string> VersionDefinitions()
        {
            var result = new HashSet<string>(StringComparer.Ordinal);
            foreach (var sec in _sections.Where(s => s.Type == ShtGnuVerdef))
            {
                var strtab = _sections[(int)sec.Link];
                long at = sec.Offset;
                for (uint n = 0; n < sec.Info; n++)
                {
                    ushort count = U16(at + 6);
                    long aux = at + U32(at + 12);
                    // The first Verdaux names the version itself; later ones name its parents.
                    if (count > 0) result.Add(Str(strtab, U32(aux)));
                    uint next = U32(at + 16);
                    if (next == 0) break;
                    at += next;
                }
            }
            return result;
        }

        /// <summary>Dynamic symbols whose version index (in .gnu.version) is <paramref name="versionIndex"/>.</summary>
        public List<string> SymbolsBoundTo(ushort versionIndex)
        {
            var result = new List<string>();
            var dynsym = _sections.FirstOrDefault(s => s.Type == ShtDynsym);
            var versym = _sections.FirstOrDefault(s => s.Type == ShtGnuVersym);
            if (dynsym == null || versym == null) return result;
            var strtab = _sections[(int)dynsym.Link];
            long entrySize = dynsym.EntrySize == 0 ? 24 : dynsym.EntrySize;
            long count = Math.Min(dynsym.Size / entrySize, versym.Size / 2);
            for (long i = 0; i < count; i++)
            {
                if ((U16(versym.Offset + 2 * i) & 0x7fff) != versionIndex) continue;
                result.Add(Str(strtab, U32(dynsym.Offset + i * entrySize)));
            }
            return result;
        }

        /// <summary>
        /// Marks as weak every need of <paramref name="dependency"/> for a version in <paramref name="versions"/> that
        /// <paramref name="available"/> (the versions the system library defines) lacks. Refuses if a symbol other than
        /// those in <paramref name="allowedSymbols"/> is bound to such a version: weakening it would only move the
        /// failure from load time to the first call. Returns the patched bytes (a copy) and what happened.
        /// </summary>
        public byte[] WeakenUnmetNeeds(string dependency, ICollection<string> versions, ICollection<string> allowedSymbols,
            ICollection<string> available, ElfPatchOutcome outcome)
        {
            var patched = (byte[])_bytes.Clone();
            var needs = VersionNeeds().Where(n => n.File == dependency).ToList();
            foreach (var version in versions)
            {
                var need = needs.FirstOrDefault(n => n.Name == version);
                if (need == null) { outcome.NotRequired.Add(version); continue; }
                if (available.Contains(version)) { outcome.Satisfied.Add(version); continue; }
                if (need.IsWeak) { outcome.AlreadyWeak.Add(version); continue; }
                var bound = SymbolsBoundTo(need.Index);
                var unexpected = bound.Where(s => !allowedSymbols.Contains(s)).ToList();
                if (unexpected.Count > 0)
                    throw new InvalidDataException(_path + ": refusing to weaken " + version + " from " + dependency +
                        " because these symbols need it and are not known to be safe without it: " + string.Join(", ", unexpected) +
                        ". This libtorch build needs a newer " + dependency + " than the system has.");
                ushort flags = (ushort)(need.Flags | VerFlagWeak);
                patched[need.FlagsOffset] = (byte)(flags & 0xff);
                patched[need.FlagsOffset + 1] = (byte)(flags >> 8);
                outcome.Weakened.Add(version);
            }
            return patched;
        }

        /// <summary>
        /// Finds the file the dynamic loader would use for <paramref name="soname"/>: LD_LIBRARY_PATH, the directories of
        /// /etc/ld.so.conf (following includes), then the default system directories. Returns null if none has it.
        /// </summary>
        public static string? FindSystemLibrary(string soname)
        {
            var dirs = new List<string>();
            var env = Environment.GetEnvironmentVariable("LD_LIBRARY_PATH");
            if (!string.IsNullOrEmpty(env)) dirs.AddRange(env!.Split(':').Where(d => d.Length > 0));
            ReadLdSoConf("/etc/ld.so.conf", dirs, 0);
            dirs.AddRange(new[] { "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib" });
            foreach (var dir in dirs)
            {
                var candidate = Path.Combine(dir, soname);
                if (System.IO.File.Exists(candidate)) return candidate;
            }
            return null;
        }

        static void ReadLdSoConf(string path, List<string> dirs, int depth)
        {
            if (depth > 8 || !System.IO.File.Exists(path)) return;
            foreach (var raw in System.IO.File.ReadAllLines(path))
            {
                var line = raw.Split('#')[0].Trim();
                if (line.Length == 0) continue;
                if (line.StartsWith("include ", StringComparison.Ordinal))
                {
                    var pattern = line.Substring(8).Trim();
                    var dir = Path.GetDirectoryName(pattern);
                    if (string.IsNullOrEmpty(dir) || !Directory.Exists(dir)) continue;
                    foreach (var f in Directory.GetFiles(dir, Path.GetFileName(pattern)).OrderBy(f => f, StringComparer.Ordinal))
                        ReadLdSoConf(f, dirs, depth + 1);
                }
                else if (line.StartsWith("/", StringComparison.Ordinal)) dirs.Add(line);
            }
        }

        /// <summary>
        /// Patches <paramref name="libraryPath"/> in place if needed. The new content goes to a temporary file in the same
        /// folder that then replaces the original by rename: a crash never leaves a half-written library, and a hard
        /// link to a package cache is broken rather than written through.
        /// </summary>
        public static ElfPatchOutcome PatchFile(string libraryPath, string dependency, ICollection<string> versions,
            ICollection<string> allowedSymbols, ICollection<string> available)
        {
            var image = Load(libraryPath);
            var outcome = new ElfPatchOutcome();
            var patched = image.WeakenUnmetNeeds(dependency, versions, allowedSymbols, available, outcome);
            if (!outcome.Changed) return outcome;
            var temp = libraryPath + ".wv-patch.tmp";
            // File.Copy keeps the original's permission bits (the execute bit matters for shared objects).
            System.IO.File.Copy(libraryPath, temp, true);
            using (var stream = new FileStream(temp, FileMode.Open, FileAccess.Write))
            {
                stream.Write(patched, 0, patched.Length);
                stream.Flush(true);
            }
            System.IO.File.Delete(libraryPath);
            System.IO.File.Move(temp, libraryPath);
            return outcome;
        }

        /// <summary>
        /// The versions in <paramref name="versions"/> that this object requires (not weak) from
        /// <paramref name="dependency"/> and that <paramref name="available"/> (the system library's definitions) lacks:
        /// the reason the dynamic loader refuses it.
        /// </summary>
        public List<string> UnmetNeeds(string dependency, ICollection<string> versions, ICollection<string> available)
        {
            return VersionNeeds()
                .Where(n => n.File == dependency && !n.IsWeak && versions.Contains(n.Name) && !available.Contains(n.Name))
                .Select(n => n.Name)
                .Distinct()
                .ToList();
        }

        Exception Bad(string what) { return new InvalidDataException(_path + ": " + what); }

        ushort U16(long at) { Check(at, 2); return (ushort)(_bytes[at] | _bytes[at + 1] << 8); }
        uint U32(long at) { Check(at, 4); return (uint)(_bytes[at] | _bytes[at + 1] << 8 | _bytes[at + 2] << 16 | _bytes[at + 3] << 24); }
        ulong U64(long at) { return U32(at) | (ulong)U32(at + 4) << 32; }

        void Check(long at, int size)
        {
            if (at < 0 || at + size > _bytes.Length)
                throw Bad("read of " + size + " bytes at offset " + at + " is past the end of the file (" + _bytes.Length + " bytes); the file is truncated or corrupt");
        }

        string Str(Section strtab, uint offset)
        {
            long start = strtab.Offset + offset;
            long end = start;
            while (end < strtab.Offset + strtab.Size && end < _bytes.Length && _bytes[end] != 0) end++;
            if (end >= _bytes.Length) throw Bad("unterminated string at offset " + start);
            return Encoding.ASCII.GetString(_bytes, (int)start, (int)(end - start));
        }
    }

#if !WIDEVALLEY_ELF_NO_MSBUILD
    /// <summary>MSBuild task: applies <see cref="ElfImage.PatchFile"/> to each library in <c>Libraries</c>.</summary>
    public class WeakenUnmetSymbolVersions : Microsoft.Build.Utilities.Task
    {
        [Microsoft.Build.Framework.Required]
        public Microsoft.Build.Framework.ITaskItem[] Libraries { get; set; } = new Microsoft.Build.Framework.ITaskItem[0];

        /// <summary>The soname whose version needs are examined, e.g. libstdc++.so.6.</summary>
        [Microsoft.Build.Framework.Required]
        public string Dependency { get; set; } = "";

        /// <summary>Semicolon-separated version names that may be weakened, e.g. GLIBCXX_3.4.32.</summary>
        [Microsoft.Build.Framework.Required]
        public string Versions { get; set; } = "";

        /// <summary>Semicolon-separated symbols known to be safe to leave unresolved.</summary>
        public string AllowedSymbols { get; set; } = "";

        /// <summary>
        /// True (build outputs): weaken only the versions this machine's library lacks. False (publish folders, which
        /// run elsewhere): weaken the listed versions whatever this machine has.
        /// </summary>
        public bool OnlyWhenSystemLacksVersion { get; set; } = true;

        public override bool Execute()
        {
            var versions = Split(Versions);
            var allowed = Split(AllowedSymbols);
            var system = OnlyWhenSystemLacksVersion ? ElfImage.FindSystemLibrary(Dependency) : "(any system)";
            if (system == null)
            {
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal,
                    "WideValley: no system " + Dependency + " found; leaving " + Libraries.Length + " libraries unpatched.");
                return true;
            }
            HashSet<string> available;
            if (!OnlyWhenSystemLacksVersion) available = new HashSet<string>(StringComparer.Ordinal);
            else try { available = ElfImage.Load(system).VersionDefinitions(); }
            catch (Exception e) { Log.LogError("WideValley: cannot read version definitions of " + system + ": " + e.Message); return false; }

            foreach (var item in Libraries)
            {
                var path = item.GetMetadata("FullPath");
                try
                {
                    var outcome = ElfImage.PatchFile(path, Dependency, versions, allowed, available);
                    if (outcome.Changed)
                        Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High,
                            "WideValley: " + path + ": marked " + string.Join(", ", outcome.Weakened) + " weak (" +
                            (OnlyWhenSystemLacksVersion ? system + " lacks it" : "published output, for systems that lack it") + ").");
                    else
                        Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low,
                            "WideValley: " + path + ": nothing to patch (satisfied: " + string.Join(",", outcome.Satisfied) +
                            "; already weak: " + string.Join(",", outcome.AlreadyWeak) + ").");
                }
                catch (Exception e)
                {
                    Log.LogError("WideValley: cannot patch " + path + ": " + e.Message);
                }
            }
            return !Log.HasLoggedErrors;
        }

        static HashSet<string> Split(string list)
        {
            return new HashSet<string>(list.Split(new[] { ';' }, StringSplitOptions.RemoveEmptyEntries).Select(s => s.Trim()), StringComparer.Ordinal);
        }
    }
#endif
}
