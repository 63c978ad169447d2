using System.Collections.Immutable;

namespace KmsBackup.Domain;

/// <summary>The checks every item's version list passes: at least one version, each with a non-empty ID unique within its item.</summary>
internal static class VersionChecks
{
    public static ImmutableArray<T> CheckVersions<T>(ImmutableArray<T> versions, Func<T, string> id, string parameter)
    {
        if (versions.IsDefaultOrEmpty)
        {
            throw new ArgumentException("An item needs at least one version.", parameter);
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var version in versions)
        {
            if (version is null || string.IsNullOrWhiteSpace(id(version)) || !seen.Add(id(version)))
            {
                throw new ArgumentException("Every version needs a non-empty ID, unique within its item.", parameter);
            }
        }

        return versions;
    }
}
