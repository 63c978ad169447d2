// README.md, "Hosting": a whole program (packages KmsBackup.Hosting, KmsBackup.DevelopmentKms, Microsoft.Extensions.Hosting
// and Microsoft.Extensions.Diagnostics.HealthChecks). After the region the test's part starts the host, lets the
// scheduler tick, asks the health check and stops the host.
#region snippet
using KmsBackup;
using KmsBackup.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddKmsBackup(o =>
{
    o.DataPath = "kmsbackup-data";        // store/ and keys/repository.key (the file-system defaults)
    o.Client.TimeZone = BackupTimeZone.FromId("Asia/Shanghai");   // days begin at 00:00 here (rule W1)
    o.Client.Schedule = new() { IncrementalInterval = TimeSpan.FromMinutes(5) };
    o.Scheduler.Tick = TimeSpan.FromMinutes(1);
})
.UseEmbeddedKeyManagementService();     // kms/ in DataPath: development and tests; production: .UseInstanceGateway(...)
builder.Services.AddKmsBackup("dr-copy", o => o.StorePath = "dr-share/kmsbackup")  // a named instance
    .UseEmbeddedKeyManagementService();
builder.Services.AddHealthChecks().AddCheck<KmsBackupHealthCheck>("kmsbackup");    // package Microsoft.Extensions.Diagnostics.HealthChecks
using var host = builder.Build();

var clients = host.Services.GetRequiredService<BackupClientProvider>();
var client = await clients.GetClientAsync();            // the unnamed instance; GetClientAsync("dr-copy") for the other
#endregion

await host.StartAsync();
var drCopy = await clients.GetClientAsync("dr-copy");
var health = await host.Services.GetRequiredService<Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckService>().CheckHealthAsync();
var backups = await client.ListBackupsAsync("acct-1").CountAsync();
await host.StopAsync();
Console.WriteLine($"snippet Hosting: clients opened (unnamed and dr-copy: {!ReferenceEquals(client, drCopy)}), {backups} backups, " +
    $"store folder {(Directory.Exists("kmsbackup-data") ? "kmsbackup-data present" : "MISSING")}, dr-copy store {(Directory.Exists("dr-share/kmsbackup") ? "present" : "MISSING")}, health {health.Status}");
