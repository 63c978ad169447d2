using System.Reflection;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// Issue 14: the model factory is how a host's tests make what a (fake) client returns. Each of its methods must
/// take every settable property of its model, so that a property added to a model and not to the factory fails here.
/// </summary>
public class ModelFactoryTests
{
    private static readonly DateTimeOffset At = new(2026, 5, 1, 9, 0, 0, TimeSpan.Zero);

    public static TheoryData<string> FactoryMethods() => [.. typeof(KmsBackupModelFactory).GetMethods(BindingFlags.Public | BindingFlags.Static).Select(m => m.Name)];

    [Theory]
    [MemberData(nameof(FactoryMethods))]
    public void Every_settable_property_of_a_model_is_a_parameter_of_its_factory_method(string method)
    {
        var factory = typeof(KmsBackupModelFactory).GetMethods(BindingFlags.Public | BindingFlags.Static).Single(m => m.Name == method);
        var model = factory.ReturnType;
        Assert.Equal(model.Name, factory.Name);
        var settable = model.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.SetMethod is { IsPublic: true }).Select(p => p.Name.ToUpperInvariant());
        var parameters = factory.GetParameters().Select(p => p.Name!.ToUpperInvariant()).ToHashSet();
        Assert.DoesNotContain(settable, p => !parameters.Contains(p));
    }

    [Fact]
    public void The_factory_sets_what_it_is_given()
    {
        var point = KmsBackupModelFactory.RecoveryPoint("bka-1", 3, BackupRunKind.Incremental, new DateOnly(2026, 5, 1), At, keyCount: 5, secretCount: 2, changeCount: 1);
        Assert.Equal(("bka-1", 3L, At, At, 5L, 2L, 1), (point.BackupId, point.Sequence, point.TakenAt, point.CompletedAt, point.KeyCount, point.SecretCount, point.ChangeCount));

        var details = KmsBackupModelFactory.BackupDetails("bka-1", BackupKind.Default, BackupStatus.Enabled, "acct", At, latestPoint: point, alias: "nightly");
        Assert.Equal((BackupTimeZone.Utc, 7, "nightly", point), (details.TimeZone, details.ViewableDays, details.Alias, details.LatestPoint));

        var run = KmsBackupModelFactory.BackupRunResult(point, bytesWritten: 100);
        var failure = new BackupRunFailure("bka-2", new InvalidOperationException("x"));
        var report = KmsBackupModelFactory.BackupRunReport([run], [failure]);
        Assert.Equal(run, Assert.Single(report));
        Assert.Equal(failure, Assert.Single(report.Failures));
        Assert.False(report.Succeeded);
        Assert.Throws<InvalidOperationException>(() => report.ThrowIfAnyFailed());
        Assert.True(KmsBackupModelFactory.BackupRunReport([run]).ThrowIfAnyFailed().Succeeded);

        var page = KmsBackupModelFactory.BackupDataPage(new DateOnly(2026, 5, 1), BackupDataType.FullyBackedUpKeys, [KmsBackupModelFactory.BackupDataItem(ItemType.Key, "orders", "acct", At, keyId: "key-1")]);
        Assert.Equal("key-1", Assert.Single(page.Items).KeyId);
        Assert.Null(page.ContinuationToken);

        var clock = KmsBackupModelFactory.StoreClockStatus(At);
        Assert.Equal((TimeSpan.FromHours(48), TimeSpan.FromMinutes(2), false), (clock.MaximumLead, clock.MaximumLag, clock.DeletionsHeld));
    }
}
