using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace KmsBackup.Tests.Hardware;

/// <summary>Examples of the hardware rules: image version (H1), protection (H2), target cluster (H5), original instance (R3), image choice and missing material (H5, H7).</summary>
public class HardwareRulesTests
{
    private static readonly DateTimeOffset s_created = new(2026, 5, 1, 0, 0, 0, TimeSpan.Zero);

    internal static InstanceInfo Hardware(string id = "kst-hw-1", Version? image = null) =>
        new(id, InstanceKind.Hardware, "cn-hangzhou", s_created) { ImageVersion = image ?? new Version(3, 9, 1) };

    internal static HsmClusterInfo GoodTarget(string id = "cls-new") => new()
    {
        ClusterId = id,
        Region = "cn-hangzhou",
        Mode = HsmClusterMode.Cluster,
        Hsms = [new HsmInfo("hsm-a", "cn-hangzhou-h"), new HsmInfo("hsm-b", "cn-hangzhou-i")],
        PrimaryHsmId = "hsm-a",
    };

    [Theory]
    [Trait("Rule", "H1")]
    [InlineData("3.9.0", false)]
    [InlineData("3.8.9", false)]
    [InlineData("2.0", false)]
    [InlineData("3.9.1", true)]
    [InlineData("3.10.0", true)]
    [InlineData("4.0", true)]
    public void A_hardware_instance_is_backed_up_only_from_image_version_3_9_1(string version, bool allowed)
    {
        var refusal = HardwareRules.CheckImageVersion(Hardware(image: Version.Parse(version)));
        Assert.Equal(allowed, refusal is null);
        if (refusal is not null)
        {
            Assert.Equal(BackupErrorCode.ImageVersionTooOld, refusal.Code);
            Assert.Contains("kst-hw-1", refusal.Message, StringComparison.Ordinal);
            Assert.Contains(version, refusal.Message, StringComparison.Ordinal);
            Assert.Contains("Upgrade", refusal.Remedy, StringComparison.Ordinal);
        }
    }

    [Fact]
    [Trait("Rule", "H1")]
    public void An_unknown_image_version_is_refused_and_software_instances_need_none()
    {
        var unknown = new InstanceInfo("kst-hw-2", InstanceKind.Hardware, "cn-hangzhou", s_created);
        Assert.Equal(BackupErrorCode.ImageVersionTooOld, HardwareRules.CheckImageVersion(unknown)!.Code);
        Assert.Null(HardwareRules.CheckImageVersion(new InstanceInfo("kst-sw", InstanceKind.Software, "cn-hangzhou", s_created)));
    }

    [Fact]
    [Trait("Rule", "H1")]
    public void Enabling_a_backup_for_an_old_hardware_instance_is_refused_by_the_lifecycle()
    {
        var backup = BackupLifecycle.CreateDefault("bkd-1", BackupTimeZone.Utc, s_created);
        var outcome = BackupLifecycle.Apply(backup, new EnableBackup(Hardware(image: new Version(3, 9, 0)), InstanceKind.Hardware, null), s_created.AddDays(1));
        Assert.False(outcome.IsAccepted);
        Assert.Equal(BackupErrorCode.ImageVersionTooOld, outcome.Refusal!.Code);

        var accepted = BackupLifecycle.Apply(backup, new EnableBackup(Hardware(), InstanceKind.Hardware, null), s_created.AddDays(1));
        Assert.True(accepted.IsAccepted);
    }

    [Fact]
    [Trait("Rule", "H2")]
    public void Full_protection_of_a_hardware_instance_needs_both_the_KMS_backup_and_the_HSM_backup()
    {
        var cluster = GoodTarget("cls-1") with { IsEnabled = true, IsInUse = true, Backup = new HsmBackupPolicy(true, 30, TimeSpan.FromDays(1)) };
        var full = HardwareRules.AssessProtection(Hardware(), 30, cluster);
        Assert.Equal(ProtectionLevel.Full, full.Level);
        Assert.Empty(full.Warnings);
        Assert.True(full.KmsBackupEnabled);
        Assert.True(full.HsmBackupEnabled);

        var metadataOnly = HardwareRules.AssessProtection(Hardware(), 30, cluster with { Backup = HsmBackupPolicy.Disabled });
        Assert.Equal(ProtectionLevel.MetadataOnly, metadataOnly.Level);
        var warning = Assert.Single(metadataOnly.Warnings);
        Assert.Equal(BackupErrorCode.HsmBackupDisabled, warning.Code);
        Assert.StartsWith("Metadata only: HSM backup disabled.", warning.Message, StringComparison.Ordinal);
        Assert.Contains("cls-1", warning.Message, StringComparison.Ordinal);

        var materialOnly = HardwareRules.AssessProtection(Hardware(), null, cluster);
        Assert.Equal(ProtectionLevel.KeyMaterialOnly, materialOnly.Level);
        Assert.Equal(BackupErrorCode.KmsBackupDisabled, Assert.Single(materialOnly.Warnings).Code);

        var none = HardwareRules.AssessProtection(Hardware(), null, null);
        Assert.Equal(ProtectionLevel.Unprotected, none.Level);
        Assert.Equal([BackupErrorCode.KmsBackupDisabled, BackupErrorCode.HsmBackupDisabled], none.Warnings.Select(w => w.Code));
    }

    [Fact]
    [Trait("Rule", "H2")]
    public void A_software_instance_is_fully_protected_by_its_KMS_backup_alone()
    {
        var software = new InstanceInfo("kst-sw", InstanceKind.Software, "cn-hangzhou", s_created);
        Assert.Equal(ProtectionLevel.Full, HardwareRules.AssessProtection(software, 7, null).Level);
        Assert.Empty(HardwareRules.AssessProtection(software, 7, null).Warnings);
        Assert.Equal(ProtectionLevel.Unprotected, HardwareRules.AssessProtection(software, null, null).Level);
    }

    [Fact]
    [Trait("Rule", "H3")]
    [Trait("Rule", "H4")]
    public void The_protection_report_carries_the_offset_and_mirror_image_warnings()
    {
        var cluster = GoodTarget("cls-1") with { Backup = new HsmBackupPolicy(true, 7, TimeSpan.Zero) };
        var protection = HardwareRules.AssessProtection(Hardware(), 30, cluster);
        Assert.Equal(ProtectionLevel.Full, protection.Level);
        Assert.Equal([BackupErrorCode.HsmBackupOffset, BackupErrorCode.MirrorImagesMismatch], protection.Warnings.Select(w => w.Code));
        Assert.Contains("may be incomplete", protection.Warnings[1].Message, StringComparison.Ordinal);
        Assert.Contains("30", protection.Warnings[1].Remedy, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "H5")]
    public void A_fresh_cluster_of_two_HSMs_in_two_zones_in_the_region_may_take_the_restore() =>
        Assert.Empty(HardwareRules.CheckRestoreCluster(GoodTarget(), "cn-hangzhou"));

    public static TheoryData<string, BackupErrorCode, string> BadTargets => new()
    {
        { "other-region", BackupErrorCode.RegionMismatch, "Purchase an HSM instance in 'cn-hangzhou'" },
        { "standalone", BackupErrorCode.ClusterNotInClusterMode, "cluster mode" },
        { "one-hsm", BackupErrorCode.ClusterTooFewHsms, "dual availability zones" },
        { "one-zone", BackupErrorCode.ClusterTooFewHsms, "dual availability zones" },
        { "enabled", BackupErrorCode.ClusterEnabled, "disable and reset" },
        { "in-use", BackupErrorCode.ClusterInUse, "disable and reset" },
    };

    [Theory]
    [Trait("Rule", "H5")]
    [MemberData(nameof(BadTargets))]
    public void Each_violation_of_the_target_cluster_is_refused_with_the_seed_remedy(string what, BackupErrorCode code, string remedy)
    {
        var good = GoodTarget();
        var target = what switch
        {
            "other-region" => good with { Region = "cn-shanghai" },
            "standalone" => good with { Mode = HsmClusterMode.Standalone },
            "one-hsm" => good with { Hsms = [good.Hsms[0]] },
            "one-zone" => good with { Hsms = [good.Hsms[0], new HsmInfo("hsm-b", good.Hsms[0].Zone)] },
            "enabled" => good with { IsEnabled = true },
            "in-use" => good with { IsInUse = true, ConnectedInstanceId = "kst-other" },
            _ => throw new ArgumentOutOfRangeException(nameof(what)),
        };

        var refusal = Assert.Single(HardwareRules.CheckRestoreCluster(target, "cn-hangzhou"));
        Assert.Equal(code, refusal.Code);
        Assert.Equal("cluster 'cls-new'", refusal.Item);
        Assert.Contains("cls-new", refusal.Message, StringComparison.Ordinal);
        Assert.Contains(remedy, refusal.Remedy, StringComparison.Ordinal);
        if (what == "one-hsm")
        {
            Assert.Contains("has 1 HSM in 1 availability zone;", refusal.Message, StringComparison.Ordinal); // not "1 HSMs", "1 availability zones"
        }
    }

    [Fact]
    [Trait("Rule", "H5")]
    public void Every_violation_is_reported_at_once()
    {
        var bad = GoodTarget() with { Region = "cn-beijing", Mode = HsmClusterMode.Standalone, Hsms = [], IsEnabled = true, IsInUse = true };
        Assert.Equal(5, HardwareRules.CheckRestoreCluster(bad, "cn-hangzhou").Count);
    }

    [Fact]
    [Trait("Rule", "R3")]
    public void Restoring_a_hardware_instance_to_the_original_instance_is_refused()
    {
        var refusal = Assert.Single(HardwareRules.CheckRestoreInstance("kst-hw-1", Hardware("kst-hw-1")));
        Assert.Equal(BackupErrorCode.RestoreTargetNotAllowed, refusal.Code);
        Assert.Contains("new hardware instance", refusal.Remedy, StringComparison.Ordinal);
        Assert.Empty(HardwareRules.CheckRestoreInstance("kst-hw-1", Hardware("kst-hw-2")));
        var software = new InstanceInfo("kst-sw", InstanceKind.Software, "cn-hangzhou", s_created);
        Assert.Equal(BackupErrorCode.InstanceKindMismatch, Assert.Single(HardwareRules.CheckRestoreInstance("kst-hw-1", software)).Code);
    }

    [Fact]
    [Trait("Rule", "H5")]
    public void The_image_restored_is_the_most_recent_Auto_Create_one()
    {
        var t = new DateTimeOffset(2026, 6, 1, 0, 0, 0, TimeSpan.Zero);
        HsmBackupImage[] images =
        [
            new("img-1", "cls-1", HsmBackupImageType.AutoCreate, t),
            new("img-3", "cls-1", HsmBackupImageType.AutoCreate, t.AddDays(2)),
            new("img-m", "cls-1", HsmBackupImageType.Manual, t.AddDays(3)),
            new("img-2", "cls-1", HsmBackupImageType.AutoCreate, t.AddDays(1)),
        ];
        Assert.Equal("img-3", HardwareRules.SelectImageForRestore(images)!.ImageId);
        Assert.Equal("Auto Create", images[0].TypeLabel);
        Assert.Null(HardwareRules.SelectImageForRestore([images[2]]));
    }

    [Fact]
    [Trait("Rule", "H7")]
    public void Keys_whose_material_is_missing_are_flagged_by_name()
    {
        var refusals = HardwareRules.CheckKeyMaterial("cls-new", [("orders", "key-2"), ("billing", "key-1"), ("audit", "key-3")], new HashSet<string> { "key-2" });
        Assert.Equal(["key 'audit'", "key 'billing'"], refusals.Select(r => r.Item));
        Assert.All(refusals, r => Assert.Equal(BackupErrorCode.KeyMaterialMissing, r.Code));
        Assert.Contains("cls-new", refusals[0].Message, StringComparison.Ordinal);
    }
}

/// <summary>Properties of the date and offset rules: H3, H4, H7.</summary>
public class HardwareDateRuleProperties
{
    private static readonly DateOnly s_base = new(2026, 1, 1);

    private static Gen<DateOnly> Dates => Gen.Choose(0, 60).Select(s_base.AddDays);

    public static Arbitrary<DateOnly[]> DateSets() => Arb.From(Gen.ArrayOf(Dates));

    [Property]
    [Trait("Rule", "H3")]
    public Property Offset_warns_exactly_when_it_is_not_one_day() =>
        Prop.ForAll(Arb.From(Gen.Choose(-48 * 4, 96 * 4).Select(q => TimeSpan.FromMinutes(q * 15))), offset =>
        {
            var warning = HardwareRules.CheckBackupOffset("cls-1", offset);
            return (warning is null) == (offset == TimeSpan.FromDays(1)) &&
                   (warning is null || (warning.Code == BackupErrorCode.HsmBackupOffset && warning.Item == "cluster 'cls-1'" && warning.Remedy.Contains("one day later", StringComparison.Ordinal)));
        });

    [Property]
    [Trait("Rule", "H4")]
    public Property Mirror_images_warn_exactly_when_they_differ_from_the_viewable_days() =>
        Prop.ForAll(Arb.From(Gen.Choose(0, 700)), Arb.From(Gen.Choose(1, 600)), (mirrors, days) =>
        {
            var warning = HardwareRules.CheckMirrorImages("cls-1", mirrors, days);
            return (warning is null) == (mirrors == days) &&
                   (warning is null || (warning.Code == BackupErrorCode.MirrorImagesMismatch &&
                                        warning.Message.Contains(mirrors.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal) &&
                                        (mirrors > days || warning.Message.Contains("incomplete", StringComparison.Ordinal))));
        });

    [Property]
    [Trait("Rule", "H7")]
    public Property A_date_is_jointly_restorable_exactly_when_it_has_metadata_and_the_next_day_has_an_image() =>
        Prop.ForAll(DateSets(), DateSets(), (kms, images) =>
        {
            var joint = HardwareRules.JointlyRestorableDates(kms, images);
            var expected = kms.Where(d => images.Contains(d.AddDays(1))).Distinct().Order().ToArray();
            return joint.SequenceEqual(expected);
        });

    [Property]
    [Trait("Rule", "H7")]
    public Property Jointly_restorable_dates_are_sorted_metadata_dates_and_more_images_never_remove_one() =>
        Prop.ForAll(DateSets(), DateSets(), DateSets(), (kms, images, more) =>
        {
            var joint = HardwareRules.JointlyRestorableDates(kms, images);
            var wider = HardwareRules.JointlyRestorableDates(kms, images.Concat(more));
            return joint.All(kms.Contains) &&
                   joint.Zip(joint.Skip(1)).All(p => p.First < p.Second) &&
                   joint.All(wider.Contains) &&
                   !joint.Any(d => images.Contains(d) && !images.Contains(d.AddDays(1)));
        });

    [Property]
    [Trait("Rule", "H7")]
    public Property The_newest_metadata_date_waits_for_the_next_day_image() =>
        Prop.ForAll(Arb.From(Gen.Choose(1, 60)), days =>
        {
            // Daily KMS fulls and daily HSM images on the same days: all but the newest date are jointly restorable.
            var dates = Enumerable.Range(0, days).Select(s_base.AddDays).ToArray();
            var joint = HardwareRules.JointlyRestorableDates(dates, dates);
            return joint.SequenceEqual(dates[..^1]);
        });
}
