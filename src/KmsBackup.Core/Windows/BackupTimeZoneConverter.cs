using System.ComponentModel;
using System.Globalization;

namespace KmsBackup;

/// <summary>
/// Converts a <see cref="BackupTimeZone"/> to and from its IANA ID, so that configuration binds a zone from a string.
/// An unknown ID throws the <see cref="BackupException"/> of <see cref="BackupTimeZone.FromId"/>
/// (<see cref="BackupErrorCode.UnknownTimeZone"/>), which names the ID and the remedy.
/// </summary>
internal sealed class BackupTimeZoneConverter : TypeConverter
{
    public override bool CanConvertFrom(ITypeDescriptorContext? context, Type sourceType) =>
        sourceType == typeof(string) || base.CanConvertFrom(context, sourceType);

    public override bool CanConvertTo(ITypeDescriptorContext? context, Type? destinationType) =>
        destinationType == typeof(string) || base.CanConvertTo(context, destinationType);

    public override object? ConvertFrom(ITypeDescriptorContext? context, CultureInfo? culture, object value) =>
        value is string id ? BackupTimeZone.FromId(id.Trim()) : base.ConvertFrom(context, culture, value);

    public override object? ConvertTo(ITypeDescriptorContext? context, CultureInfo? culture, object? value, Type destinationType) =>
        destinationType == typeof(string) && value is BackupTimeZone zone ? zone.Id : base.ConvertTo(context, culture, value, destinationType);
}
