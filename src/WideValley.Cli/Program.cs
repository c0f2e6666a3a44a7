using System.Runtime.InteropServices;
using WideValley.Cli;

NativeEnvironment.PreferPassiveOpenMpThreads();
NativeEnvironment.NoTerminalModesUnderMpi();
return CliApp.Run(args, Console.Out, Console.Error);

namespace WideValley.Cli
{
    internal static partial class NativeEnvironment
    {
        [DllImport("libc", EntryPoint = "setenv", CharSet = CharSet.Ansi)]
        static extern int SetEnv(string name, string value, int overwrite);

        /// <summary>
        /// On a 2-core machine, OpenMP worker threads that spin between parallel regions steal the core the managed
        /// thread needs, and step times jitter. Passive waiting steadies them. It must reach the native environment
        /// (Environment.SetEnvironmentVariable does not on Unix) before libtorch starts its thread pool. A value the
        /// user set is kept.
        /// </summary>
        public static void PreferPassiveOpenMpThreads()
        {
            if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is not null) return;
            try { SetEnv("OMP_WAIT_POLICY", "PASSIVE", 0); }
            catch (DllNotFoundException) { /* not glibc: keep libtorch's default */ }
            catch (EntryPointNotFoundException) { }
        }

        /// <summary>
        /// Open MPI gives each rank a pseudo-terminal for its output and forwards it into mpirun's, so .NET takes a
        /// rank's stdout for a terminal and, on first use, switches it to keypad mode from TERM's terminfo: the escapes
        /// ESC[?1h ESC= land in front of every rank's first line (and of hessian --json's object). A rank never reads
        /// keys, so it is told its terminal is a dumb one (the managed environment, which .NET's console reads) before
        /// the console starts.
        /// </summary>
        public static void NoTerminalModesUnderMpi()
        {
            if (OperatingSystem.IsWindows() || !WideValley.Distributed.Collectives.LaunchedByMpi) return;
            Environment.SetEnvironmentVariable("TERM", "dumb");
        }
    }
}
