using System.Runtime.InteropServices;
using WideValley.Cli;

NativeEnvironment.PreferPassiveOpenMpThreads();
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
    }
}
