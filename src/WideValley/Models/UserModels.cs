using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.Loader;

namespace WideValley.Models;

/// <summary>
/// Loads <see cref="IModelFactory"/> implementations from user assemblies. Each assembly gets its own
/// <see cref="AssemblyLoadContext"/> that resolves the assembly's own dependencies next to it (through its
/// <c>.deps.json</c>), while every assembly the host already has (TorchSharp, WideValley, the framework) comes from the
/// host: a copy of TorchSharp.dll next to the user's DLL is never loaded, so the user's modules are the host's
/// <c>nn.Module</c> type and work with every measurement.
/// </summary>
public static class UserModels
{
    private static readonly ConcurrentDictionary<string, Assembly> Loaded = new(StringComparer.Ordinal);

    /// <summary>
    /// The factory named by <paramref name="specification"/>, <c>path/to/My.dll:My.Namespace.MyFactory</c> (the type's
    /// full name; the last ':' separates it from the path).
    /// </summary>
    /// <exception cref="ArgumentException">The specification has no ':' or an empty part, the type does not exist
    /// (the message lists the assembly's factories), does not implement <see cref="IModelFactory"/>, is abstract,
    /// or has no public parameterless constructor.</exception>
    /// <exception cref="FileNotFoundException">The assembly file does not exist.</exception>
    /// <exception cref="BadImageFormatException">The file is not a .NET assembly.</exception>
    public static IModelFactory LoadFactory(string specification)
    {
        ArgumentNullException.ThrowIfNull(specification);
        var colon = specification.LastIndexOf(':');
        if (colon <= 0 || colon == specification.Length - 1)
            throw new ArgumentException(
                $"model factory '{specification}': expected ASSEMBLY:TYPE, e.g. bin/MyModels.dll:MyModels.MlpFactory (the assembly path, a colon, the type's full name)",
                nameof(specification));
        return LoadFactory(specification[..colon], specification[(colon + 1)..]);
    }

    /// <summary>The factory <paramref name="typeName"/> (full name) from the assembly at <paramref name="assemblyPath"/>.</summary>
    /// <exception cref="ArgumentException">See <see cref="LoadFactory(string)"/>.</exception>
    /// <exception cref="FileNotFoundException">The assembly file does not exist.</exception>
    public static IModelFactory LoadFactory(string assemblyPath, string typeName)
    {
        ArgumentNullException.ThrowIfNull(assemblyPath);
        ArgumentNullException.ThrowIfNull(typeName);
        var assembly = LoadAssembly(assemblyPath);
        var type = assembly.GetType(typeName, throwOnError: false, ignoreCase: false);
        if (type is null)
        {
            var factories = FactoryTypes(assembly);
            throw new ArgumentException(
                $"{assembly.Location}: no type '{typeName}'. " + (factories.Count == 0
                    ? $"The assembly has no public class implementing {nameof(IModelFactory)} (is it built against this WideValley?)."
                    : $"Its {nameof(IModelFactory)} types: {string.Join(", ", factories)}."),
                nameof(typeName));
        }
        if (!typeof(IModelFactory).IsAssignableFrom(type))
        {
            var sameName = type.GetInterfaces().FirstOrDefault(i => i.FullName == typeof(IModelFactory).FullName);
            throw new ArgumentException(sameName is null
                ? $"{assembly.Location}: type '{typeName}' does not implement {typeof(IModelFactory).FullName}"
                : $"{assembly.Location}: type '{typeName}' implements an {nameof(IModelFactory)} from another copy of WideValley ({sameName.Assembly.Location}); build it against the WideValley this program uses",
                nameof(typeName));
        }
        if (type.IsAbstract || type.IsInterface)
            throw new ArgumentException($"{assembly.Location}: type '{typeName}' is abstract; name a concrete class", nameof(typeName));
        if (type.GetConstructor(Type.EmptyTypes) is null)
            throw new ArgumentException($"{assembly.Location}: type '{typeName}' has no public parameterless constructor; add one (the CLI creates factories with new T())", nameof(typeName));
        try
        {
            return (IModelFactory)Activator.CreateInstance(type)!;
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw new InvalidOperationException($"{assembly.Location}: the constructor of '{typeName}' threw: {e.InnerException.Message}", e.InnerException);
        }
    }

    /// <summary>The full names of the public, concrete <see cref="IModelFactory"/> types in the assembly at <paramref name="assemblyPath"/>.</summary>
    /// <exception cref="FileNotFoundException">The assembly file does not exist.</exception>
    public static IReadOnlyList<string> ListFactories(string assemblyPath) => FactoryTypes(LoadAssembly(assemblyPath));

    private static List<string> FactoryTypes(Assembly assembly)
    {
        Type[] types;
        try
        {
            types = assembly.GetExportedTypes();
        }
        catch (ReflectionTypeLoadException e)
        {
            types = e.Types.Where(t => t is not null).ToArray()!;
        }
        return types.Where(t => typeof(IModelFactory).IsAssignableFrom(t) && !t.IsAbstract && !t.IsInterface)
            .Select(t => t.FullName!).Order(StringComparer.Ordinal).ToList();
    }

    private static Assembly LoadAssembly(string assemblyPath)
    {
        var full = Path.GetFullPath(assemblyPath);
        if (!File.Exists(full))
            throw new FileNotFoundException($"{full}: no such assembly (expected the DLL that holds your {nameof(IModelFactory)}, e.g. bin/Release/net10.0/MyModels.dll)", full);
        return Loaded.GetOrAdd(full, path => new UserAssemblyLoadContext(path).LoadFromAssemblyPath(path));
    }

    /// <summary>
    /// Resolves a user assembly's private dependencies next to it, and everything the host can load (TorchSharp,
    /// WideValley, the framework) from the host, so that types are shared rather than duplicated.
    /// </summary>
    private sealed class UserAssemblyLoadContext(string mainAssemblyPath)
        : AssemblyLoadContext($"WideValley user models: {Path.GetFileName(mainAssemblyPath)}")
    {
        private readonly AssemblyDependencyResolver resolver = new(mainAssemblyPath);

        protected override Assembly? Load(AssemblyName assemblyName)
        {
            // The host first: an assembly the host has (or can load) must be the host's copy, else two TorchSharps or
            // two WideValleys would exist, and a user module would not be the host's nn.Module.
            var hosted = Default.Assemblies.FirstOrDefault(a => AssemblyName.ReferenceMatchesDefinition(assemblyName, a.GetName()));
            if (hosted is not null) return hosted;
            try
            {
                return Default.LoadFromAssemblyName(assemblyName);
            }
            catch (FileNotFoundException)
            {
                // Not the host's: the user's own dependency.
            }
            var path = resolver.ResolveAssemblyToPath(assemblyName);
            return path is null ? null : LoadFromAssemblyPath(path);
        }

        protected override IntPtr LoadUnmanagedDll(string unmanagedDllName)
        {
            var path = resolver.ResolveUnmanagedDllToPath(unmanagedDllName);
            return path is null ? IntPtr.Zero : LoadUnmanagedDllFromPath(path);
        }
    }
}
