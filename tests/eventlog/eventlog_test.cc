// The event log library against the real logs of shared/testdata/eventlogs (MANIFEST.md gives
// every expected value below) and against synthetic logs built to break one rule each.
// Event numbers: record 0 is the Spec ID record (as tpm2_eventlog counts), so MANIFEST's 0-based
// "event N" (counting TCG_PCR_EVENT2 records) is our event N+1; offsets are the same.
#include <gtest/gtest.h>

#include "common/hex.h"
#include "common/openssl.h"
#include "eventlog/builder.h"
#include "eventlog/decode.h"
#include "eventlog/replay.h"
#include "test_util.h"

namespace tdxvirt::eventlog {
namespace {

using testing::ReadTestdata;

constexpr char kZ[] =
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

struct Case {
  const char* dir;
  size_t events;  // TCG_PCR_EVENT2 records (MANIFEST's count)
  size_t log_bytes;
  std::array<size_t, 4> extends;
  std::array<const char*, 4> rtmrs;
};

const Case kCases[] = {
    {"ovmf-direct-boot", 19, 2026, {14, 4, 1, 0},
     {"8083cd6898cc52a90231cdf9c0532bf9513c40465c6f71e56cbe32ee2c11a9dfc030297ca3ca0f62477d6d1f610d3fdb",
      "6484f0d72c03521c0434553be34e8db8228b729e799666d2b7754085c77aa9981f5a440df3047194b24f212ff1160c1e",
      "c3e7ed9d7e909b29732f676d01dc63de869b049362b522a315cb042689670be07344c347cf85d985c7b928d4934e41e1", kZ}},
    {"gdc-grub-empty-sb", 109, 15599, {18, 7, 84, 0},
     {"4655ef03c877b3d74a66203e46858fb990dba974a45ca65085bc464594336e04eb49ca100e6a1cebe7ae322f3288b08f",
      "bf86aac140c10507b73c23d2f3a676b6a3695a9aade36335733180b04b0eecd20d05abe2e3aa5e8b0bad73fae30f34f4",
      "b65f8202d0d3c9679fe0b1f3f341a5c8eea49ea493146416deed8ae363d7632544d429424e2a208234c76ed5c1ba09ce", kZ}},
    {"gce-ubuntu-2404-multiboot", 159, 50314, {32, 39, 86, 0},
     {"3e2fb8ad5de9b9e66d0fe73a54c029130eb9c0aef09710e318c977cc13c718368c4adc02b74bc9cf4cf8118efe1a6f93",
      "95328dff96c9d6c554a4019865587cf17ecc77ff48a97dec5e52e061e538bd13c0b7f2207ec4067cb66dbe3a9c99da27",
      "8193fd4da62d60ab6597fc2a53cba87a85a9a5f0979fd5ca670d15a07820e32ff64da4699ae82b4f2a6005aa75c478d5", kZ}},
    {"gce-cos-dupe-separator", 43, 18101, {17, 6, 20, 0},
     {"a4de2df23e9611299123ba4359c42a5e578b0f8488bf1bba8ef5606d9ea5d81c97c064b482a5eac537d166bd0f0f752d",
      "0ee9366c928a77092f55e9e114c7394181fd264699155f0df77d23577618d5f650568a17d379355a07bd846e552f4e20",
      "4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6fbe7c1", kZ}},
    {"trustee-ccel-data", 5, 9822, {2, 3, 0, 0},
     {"2dc712306a963eadb894ad47dbaa17df44814151555aee11cbb843becca88950ffd079664902e6f22c66f7c8213543f4",
      "0fa3be56af61208bbd179dc7b124988eb929319154663c539d6f46445ecac2fec287075047ff7bd1922829fec28cd3cf", kZ, kZ}},
    {"trustee-ovmf", 20, 2120, {14, 4, 2, 0},
     {"8566f998798db09443b244c62de9a3041fb02e2e6936c4396d784bba2e90177329ec5aba3bb484404f2ab9cc90abe193",
      "775b9f6bfe99f8a31396f0d0218e67ffa796d3b96ccf961cbb0deba48c79c00f082cda1a5567c1c16305f1fc210c13c6",
      "94eaf7a7bf398ed8d888c91057ae0261802e4f3df084213a76ca7f0b5055ac9d2241de43cd58d9e8b49c503bbf25f34a", kZ}},
    {"trustee-grub", 37, 15130, {20, 9, 8, 0},
     {"cec0a104f691f60da2387fea3c2de00c4ac035e2bb479ff02edcce69039d9e9907f0b3e55031da3dc7038f423adebd79",
      "6c289e0c62182d41ebe97bdbc9872d10998a08eaa86adcdc684001a363207ee72942c7522cdf00a4bbc3d784bed7b670",
      "08919d017ba0e52cd6d966351c7de16fe76c1d3d3d3da4554239e4c7d16cb8b82a94e7eaea3a0e6e18eb690b999fd31e", kZ}},
    {"trustee-grub-gke", 35, 21897, {14, 7, 12, 0},
     {"bc9945139042cf2cc75caf920aa57f14884ecfd7e893bccc51250c8ce90eb53ce72741e6adaa18183eb1331a87d4544a",
      "c17cb288a4dee302bb9ed8d27257a168f3264ad68cab53757f37eeaa7039657fa887cad65cf910e0fdc435ff110f8a7b",
      "334aeba2c985f8886cea97d1ecffbd512769d528b9a94009583db667ad7d2faa7d37fa145d75b192ceee2d2f10b2eb6d", kZ}},
    {"trustee-gcp", 21, 20349, {14, 7, 0, 0},
     {"3300980705adf09d28b707b79699d9874892164280832be2c386a715b6e204e0897fb564a064f810659207ba862b304f",
      "204d49f78d29918fe7b2f694e76653861a0c2a018987d2c3a54266eff737232524cf0af68c4d180e2f8c2c0937f21967", kZ, kZ}},
    {"trustee-aael-alibaba", 87, 11707, {13, 14, 58, 2},
     {"b796e1c11396c198ae88794def4cb8e24fa9b35468287c298087f00d4de7433e4e31a297a4e5a03d4300fa6f3a96d47c",
      "3b0b906140fcea689c8774ac1eafcf0fef8e22ba81a047fd750ebd7df3235c2704df6106a758e31e5645e9838ff37406",
      "35f2801338c1b5fce96518f058c37e0fe9ed247a12dcd5f50d9c18fe4b6c71311bb63fca2640c7915817b6aa412a8480",
      "5e4ecd49d3c7983d6f9ca36755b5cee0b423d7fa8c5a88aeb0681bd4698772bc37b4463dc5f722efe352a66417257dad"}},
};

EventLog MustParse(const std::string& dir) {
  auto log = ParseEventLog(ReadTestdata("eventlogs/" + dir + "/ccel.bin"));
  EXPECT_TRUE(log.ok()) << dir << ": " << log.error();
  return log.ok() ? std::move(*log) : EventLog{};
}

evidence::Sha384Digest Hex48(const std::string& hex) {
  return *FromHexFixed<48>(hex, "test");
}

TEST(EventLogReal, EveryPositiveLogReplaysToItsPublishedValues) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.dir);
    EventLog log = MustParse(c.dir);
    EXPECT_EQ(log.events.size(), c.events + 1);  // + the Spec ID record
    EXPECT_EQ(log.log_bytes, c.log_bytes);
    Replayed r = Replay(log);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(ToHex(r.rtmrs[i]), c.rtmrs[i]) << "rtmr" << i;
      EXPECT_EQ(r.extends[i], c.extends[i]) << "rtmr" << i;
    }
    // Every binding MANIFEST says holds in all real logs holds: nothing real is broken.
    auto decoded = DecodeEvents(log);
    ASSERT_EQ(decoded.size(), log.events.size());
    for (size_t i = 0; i < decoded.size(); ++i)
      EXPECT_NE(decoded[i].binding, Binding::kBroken) << DescribeEvent(log.events[i], decoded[i])
                                                      << ": " << decoded[i].problem;
    // A quote carrying exactly these registers matches everywhere.
    Rtmrs quote;
    for (size_t i = 0; i < 4; ++i) quote[i] = Hex48(c.rtmrs[i]);
    for (const auto& v : Judge(r, quote)) EXPECT_EQ(v.verdict, Verdict::kMatch) << v.reason;
  }
}

TEST(EventLogReal, FillAndTerminators) {
  EXPECT_EQ(MustParse("trustee-ccel-data").fill, std::optional<uint8_t>(0x00));
  EXPECT_EQ(MustParse("gdc-grub-empty-sb").fill, std::optional<uint8_t>(0xFF));
  EXPECT_EQ(MustParse("ovmf-direct-boot").fill, std::nullopt);  // shipped unpadded
  EXPECT_EQ(MustParse("trustee-aael-alibaba").fill, std::optional<uint8_t>(0xFF));  // 8 bytes
  EventLog shim = MustParse("trustee-ccel-data");
  EXPECT_EQ(shim.events[0].mr_index, 0u);
  EXPECT_EQ(AsString(shim.spec_id.vendor_info), std::string_view("td-shim", 7));
}

TEST(EventLogReal, DerivedDigestFlipIsBrokenAtTheSeparator) {
  EventLog log = MustParse("derived-digest-flip");
  auto decoded = DecodeEvents(log);
  std::vector<size_t> broken;
  for (const auto& d : decoded)
    if (d.binding == Binding::kBroken) broken.push_back(d.number);
  ASSERT_EQ(broken, std::vector<size_t>{19});  // MANIFEST's event 18
  const Event& e = log.events[19];
  EXPECT_EQ(e.offset, 2346u);
  EXPECT_EQ(DescribeEvent(e, decoded[19]), "event 19 (EV_SEPARATOR, RTMR1, offset 2346)");
  EXPECT_EQ(decoded[19].problem,
            "digest 384341b7182cd227c5c6b07ef8000cdfd86136c4292b8e576573ad7ed9ae41019f5818b4b971c9effc60e1ad9f1289f0"
            " is not SHA-384 of its 4 data bytes (394341b7182cd227c5c6b07ef8000cdfd86136c4292b8e576573ad7ed9ae41019f5818b4b971c9effc60e1ad9f1289f0)"
            ": the event data does not match what was measured");
  // And it is not the published value.
  EXPECT_EQ(ToHex(Replay(log).rtmrs[1]),
            "e1b85901b3dcd400fea22397b809bec3799cebc74993f5c15ba160841731a231eca2c775bfccc52df9a2e4c4a66210a3");
}

TEST(EventLogReal, DerivedTruncatedNamesTheEventAndOffsets) {
  auto log = ParseEventLog(ReadTestdata("eventlogs/derived-truncated/ccel.bin"));
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.error(),
            "event log: event 17 (offset 8324): event data (EventSize 1608) at offset 8390 needs "
            "1608 bytes but 804 remain; the log is truncated: supply the whole "
            "/sys/firmware/acpi/tables/data/CCEL");
}

TEST(EventLogReal, CcelTables) {
  auto t = ParseCcelTable(ReadTestdata("eventlogs/ovmf-direct-boot/ccel_table.bin"));
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_EQ(t->cc_type, kCcTypeTdx);
  EXPECT_EQ(t->cc_subtype, 0);
  EXPECT_EQ(t->laml, 0x10000u);
  EXPECT_EQ(t->lasa, 0x7D649000u);
  auto sev = ParseCcelTable(ReadTestdata("eventlogs/derived-cctype-sev/ccel_table.bin"));
  ASSERT_FALSE(sev.ok());
  EXPECT_EQ(sev.error(),
            "CCEL table: CC type at offset 36 is 1 (AMD SEV), not 2 (Intel TDX): its log does not "
            "describe TDX RTMRs; supply the CCEL of a TD");
}

TEST(CcelTable, RefusesBadSignatureLengthAndChecksum) {
  Bytes good = MakeCcelTable(0x10000, 0x1000);
  ASSERT_TRUE(ParseCcelTable(good).ok());
  Bytes sig = good;
  sig[0] = 'X';
  EXPECT_EQ(ParseCcelTable(sig).error(),
            "CCEL table: signature at offset 0 is \"XCEL\", not \"CCEL\"; supply "
            "/sys/firmware/acpi/tables/CCEL (the table, not its data)");
  EXPECT_EQ(ParseCcelTable(ByteSpan(good).first(40)).error(),
            "CCEL table: 40 bytes, but the table is 56 bytes; supply the whole "
            "/sys/firmware/acpi/tables/CCEL");
  Bytes sum = good;
  sum[50] ^= 1;
  EXPECT_NE(ParseCcelTable(sum).error().find("checksum at offset 9"), std::string::npos);
}

// --- Decode of real fields ---

const DecodedEvent& Find(const std::vector<DecodedEvent>& d, size_t number) { return d.at(number); }

TEST(EventLogDecode, GrubKernelCmdlineInGceCos) {
  EventLog log = MustParse("gce-cos-dupe-separator");
  auto d = DecodeEvents(log);
  const auto& cmd = Find(d, 41);  // MANIFEST event 40
  EXPECT_EQ(cmd.binding, Binding::kBound);
  std::string text = cmd.fields["kernel_cmdline"].get<std::string>();
  EXPECT_EQ(text.substr(0, 71),
            "/syslinux/vmlinuz.A init=/usr/lib/systemd/systemd rootwait ro noresume ");
  EXPECT_EQ(ossl::Sha384(AsBytes(text)), log.events[41].sha384);
  auto s = Summarize(log, d);
  ASSERT_TRUE(s.cmdline);
  EXPECT_EQ(s.cmdline->source, "grub");
  EXPECT_EQ(s.cmdline->event, 41u);
  EXPECT_EQ(*s.cmdline->text, text);
  ASSERT_TRUE(s.kernel);  // the file GRUB read for `linux /syslinux/vmlinuz.A`
  EXPECT_EQ(s.kernel->event, 40u);
  EXPECT_EQ(Find(d, 40).fields["path"], "/syslinux/vmlinuz.A");
  EXPECT_EQ(s.boot_path.back(), "\\EFI\\BOOT\\grub-lakitu.efi");
  ASSERT_EQ(s.warnings.size(), 1u);
  EXPECT_EQ(s.warnings[0], "2 separators in RTMR0 (events 8, 16); replayed as logged");
  EXPECT_EQ(s.secure_boot, std::optional<bool>(false));
}

TEST(EventLogDecode, OvmfDirectBoot) {
  EventLog log = MustParse("ovmf-direct-boot");
  auto d = DecodeEvents(log);
  EXPECT_EQ(Find(d, 12).fields["device_path"], "VenMedia(1428f772-b64a-441e-b8c3-9ebdd7f893c7)/kernel");
  // This stub logged the LoadOptions description without a tag header; the options themselves
  // are not in the log, so only the digest can be compared.
  EXPECT_EQ(Find(d, 17).fields["tag"], "LOADED_IMAGE::LoadOptions");
  EXPECT_EQ(Find(d, 17).binding, Binding::kOpaque);
  EXPECT_EQ(Find(d, 3).fields["variable"], "SecureBoot");
  EXPECT_EQ(Find(d, 3).fields["value"], "00");
  EXPECT_EQ(Find(d, 3).binding, Binding::kBound);
  EXPECT_EQ(Find(d, 15).fields["text"], "Calling EFI Application from Boot Option");
  EXPECT_EQ(Find(d, 13).fields["boot_order"], "Boot0000");
  EXPECT_EQ(Find(d, 13).binding, Binding::kBound);  // BootOrder: SHA-384 of the value only
  EXPECT_EQ(Find(d, 1).fields["description"], "TdxTable");
  auto s = Summarize(log, d);
  ASSERT_TRUE(s.kernel);
  EXPECT_EQ(s.kernel->event, 12u);
  EXPECT_EQ(s.kernel->source, "efi-app");
  ASSERT_TRUE(s.cmdline);
  EXPECT_EQ(s.cmdline->source, "efi-stub");
  EXPECT_EQ(s.cmdline->binding, Binding::kOpaque);
  EXPECT_FALSE(s.cmdline->text);
  EXPECT_FALSE(s.initrd);
  EXPECT_EQ(DescribeEvent(log.events[17], d[17]),
            "event 17 (EV_EVENT_TAG LOADED_IMAGE::LoadOptions, RTMR2, offset 1733)");
}

TEST(EventLogDecode, TrusteeOvmfStubTags) {
  EventLog log = MustParse("trustee-ovmf");
  auto s = Summarize(log, DecodeEvents(log));
  ASSERT_TRUE(s.initrd && s.cmdline && s.kernel);
  EXPECT_EQ(s.initrd->event, 18u);
  EXPECT_EQ(s.initrd->source, "efi-stub");
  EXPECT_EQ(s.cmdline->event, 17u);
}

TEST(EventLogDecode, SecureBootStates) {
  EventLog gdc = MustParse("gdc-grub-empty-sb");
  auto d = DecodeEvents(gdc);
  EXPECT_EQ(Find(d, 3).fields["variable"], "SecureBoot");
  EXPECT_EQ(Find(d, 3).fields["value_size"], 0);  // empty variable, accepted
  EXPECT_EQ(Summarize(gdc, d).secure_boot, std::optional<bool>(false));
  EventLog grub = MustParse("trustee-grub");
  EXPECT_EQ(Summarize(grub, DecodeEvents(grub)).secure_boot, std::optional<bool>(true));
  EventLog shim = MustParse("trustee-ccel-data");
  EXPECT_EQ(Summarize(shim, DecodeEvents(shim)).secure_boot, std::nullopt);
}

TEST(EventLogDecode, GdcShimGrubKernelInitrdCmdline) {
  EventLog log = MustParse("gdc-grub-empty-sb");
  auto s = Summarize(log, DecodeEvents(log));
  ASSERT_TRUE(s.kernel && s.initrd && s.cmdline);
  EXPECT_EQ(s.kernel->event, 102u);  // "/vmlinuz-6.11.0-21-generic" read after `linux`
  EXPECT_EQ(s.kernel->source, "grub");
  EXPECT_EQ(s.initrd->event, 105u);
  // The stub's initrd tag measured the same file.
  EXPECT_EQ(s.initrd->digest, log.events[107].sha384);
  EXPECT_EQ(s.cmdline->text.value().substr(0, 45), "/vmlinuz-6.11.0-21-generic root=/dev/mapper/u");
  EXPECT_EQ(s.boot_attempts, 1u);
}

TEST(EventLogDecode, MultibootCountsAttemptsAndTakesTheLast) {
  EventLog log = MustParse("gce-ubuntu-2404-multiboot");
  auto d = DecodeEvents(log);
  auto s = Summarize(log, d);
  EXPECT_EQ(s.boot_attempts, 17u);
  ASSERT_TRUE(s.kernel && s.cmdline);
  EXPECT_EQ(s.kernel->event, 149u);
  EXPECT_EQ(Find(d, 149).fields["path"], "/vmlinuz-6.17.0-1008-gcp");
  EXPECT_EQ(*s.cmdline->text,
            "/vmlinuz-6.17.0-1008-gcp root=PARTUUID=55cc24dc-10c8-41c3-967c-f58a5d61b8bb ro "
            "console=ttyS0,115200 panic=-1");
  EXPECT_EQ(Find(d, 1).fields["text"], "SP800-155 Event3");
  EXPECT_EQ(log.events[1].mr_index, 0u);
}

TEST(EventLogDecode, ShimGrubThenKernelImage) {
  EventLog log = MustParse("trustee-grub");
  auto s = Summarize(log, DecodeEvents(log));
  ASSERT_TRUE(s.kernel);
  EXPECT_EQ(s.kernel->event, 33u);  // the image grubx64.efi loaded (no device path)
  EXPECT_EQ(s.kernel->source, "efi-app");
  ASSERT_EQ(s.boot_path.size(), 5u);
  EXPECT_EQ(s.boot_path[1], "\\EFI\\BOOT\\fbx64.efi");
}

TEST(EventLogDecode, UkiSections) {
  EventLog log = MustParse("trustee-grub-gke");
  auto d = DecodeEvents(log);
  EXPECT_EQ(Find(d, 21).fields["uki_section"], ".linux");
  EXPECT_EQ(Find(d, 21).binding, Binding::kBound);  // the name: SHA-384(".linux\0")
  EXPECT_EQ(Find(d, 22).fields["measures"], "content");
  auto s = Summarize(log, d);
  ASSERT_TRUE(s.kernel && s.initrd && s.cmdline);
  EXPECT_EQ(s.kernel->event, 22u);
  EXPECT_EQ(s.cmdline->event, 26u);
  EXPECT_EQ(s.initrd->event, 28u);
  EXPECT_EQ(s.kernel->source, "uki");
}

TEST(EventLogDecode, TdShim) {
  EventLog log = MustParse("trustee-ccel-data");
  auto s = Summarize(log, DecodeEvents(log));
  ASSERT_TRUE(s.kernel && s.cmdline);
  EXPECT_EQ(s.kernel->source, "td-shim");
  EXPECT_EQ(s.cmdline->binding, Binding::kBound);
  EXPECT_EQ(*s.cmdline->text, "root=/dev/vda1 console=hvc0 rw");
  EXPECT_EQ(s.boot_attempts, 0u);
}

TEST(EventLogDecode, AlibabaOldGrubFormsAndAael) {
  EventLog log = MustParse("trustee-aael-alibaba");
  auto d = DecodeEvents(log);
  EXPECT_EQ(log.events[86].offset, 11447u);  // MANIFEST event 85, first MR-4 event
  EXPECT_EQ(log.events[86].mr_index, 4u);
  EXPECT_EQ(Find(d, 86).fields["tag"], "AAEL");
  EXPECT_EQ(Find(d, 86).fields["text"], "coco.com some-operation some-content");
  EXPECT_EQ(Find(d, 86).binding, Binding::kBound);
  EXPECT_EQ(Find(d, 87).binding, Binding::kBound);
  // "grub_cmd X": SHA-384 of X and its NUL; "grub_kernel_cmdline X": of X.
  EXPECT_EQ(Find(d, 29).binding, Binding::kBound);
  EXPECT_EQ(Find(d, 81).binding, Binding::kBound);
  EXPECT_EQ(Find(d, 10).fields["text"], "etc/table-loader");
  auto s = Summarize(log, d);
  ASSERT_TRUE(s.kernel && s.initrd && s.cmdline);
  EXPECT_EQ(s.kernel->event, 80u);  // grub_linuxefi Kernel
  EXPECT_EQ(s.initrd->event, 83u);
  EXPECT_EQ(s.cmdline->event, 81u);
}

// --- Binding breaks when the data is changed ---

TEST(EventLogBinding, EveryBoundKindBreaksWhenItsDigestChanges) {
  EventLogBuilder b;
  evidence::Sha384Digest wrong{};
  wrong[0] = 1;
  b.Add(1, kEvSeparator, wrong, Bytes{0, 0, 0, 0});
  b.Add(2, kEvEfiAction, wrong, AsBytes("Calling EFI Application from Boot Option"));
  b.Add(3, kEvIpl, wrong, AsBytes(std::string_view("grub_cmd: linux /vmlinuz\0", 25)));
  b.Add(3, kEvIpl, wrong, AsBytes(std::string_view("kernel_cmdline: /vmlinuz ro\0", 28)));
  auto opts = DirectBootLoadOptions("console=hvc0", true);
  b.AddTag(3, kTagLoadOptions, *opts, wrong);
  Bytes var(32, 0);
  var[16] = 0;  // name length 0, data length 0
  b.Add(1, kEvEfiVariableDriverConfig, wrong, var);
  b.Add(4, kEvEventTag, wrong, TaggedEventData(0x4141454C, AsBytes("x y z")));
  auto log = ParseEventLog(b.Finish());
  ASSERT_TRUE(log.ok()) << log.error();
  auto d = DecodeEvents(*log);
  for (size_t i = 1; i < d.size(); ++i)
    EXPECT_EQ(d[i].binding, Binding::kBroken) << DescribeEvent(log->events[i], d[i]);
  auto s = Summarize(*log, d);
  EXPECT_EQ(s.warnings.size(), 8u);  // 7 broken events and "no SecureBoot variable"
}

TEST(EventLogBinding, BuilderLoadOptionsBindWithText) {
  EventLogBuilder b;
  auto opts = DirectBootLoadOptions("console=hvc0 debug", false);
  b.AddTag(3, kTagLoadOptions, *opts);
  auto log = ParseEventLog(b.Finish());
  ASSERT_TRUE(log.ok());
  auto d = DecodeEvents(*log);
  EXPECT_EQ(d[1].binding, Binding::kBound);
  auto s = Summarize(*log, d);
  ASSERT_TRUE(s.cmdline && s.cmdline->text);
  EXPECT_EQ(*s.cmdline->text, "console=hvc0 debug");
  EXPECT_EQ(DescribeEvent(log->events[1], d[1]),
            "event 1 (EV_EVENT_TAG LOADED_IMAGE::LoadOptions, RTMR2, offset 65)");
}

// --- Judge ---

TEST(EventLogJudge, MatchMismatchUnexplained) {
  EventLogBuilder b;
  b.AddHashed(1, kEvSeparator, Bytes{0, 0, 0, 0});
  b.AddHashed(2, kEvEfiAction, AsBytes("Exit Boot Services Invocation"));
  auto log = ParseEventLog(b.Finish());
  ASSERT_TRUE(log.ok());
  Replayed r = Replay(*log);
  EXPECT_EQ(r.rtmrs, b.rtmrs());
  Rtmrs quote = b.rtmrs();
  quote[1][0] ^= 1;     // covered, differs: mismatch
  quote[3].fill(0xAB);  // RTMR3 has no event, quote non-zero: unexplained
  auto v = Judge(r, quote);
  EXPECT_EQ(v[0].verdict, Verdict::kMatch);
  EXPECT_EQ(v[1].verdict, Verdict::kMismatch);
  EXPECT_EQ(v[1].reason, "rtmr1: log replays to " + ToHex(r.rtmrs[1]) + " (1 event log event), quote has " +
                             ToHex(quote[1]));
  EXPECT_EQ(v[2].verdict, Verdict::kMatch);  // no event, zero in the quote
  EXPECT_EQ(v[3].verdict, Verdict::kUnexplained);
  EXPECT_EQ(v[3].reason, "rtmr3: the log has no event for it, the quote has " + ToHex(quote[3]) +
                             " (extended at run time or by a log not supplied)");
}

TEST(EventLogJudge, NoActionEventsAreNeverReplayedWhateverTheirIndex) {
  EventLogBuilder b;
  b.AddHashed(1, kEvSeparator, Bytes{0, 0, 0, 0});
  Bytes log = b.Finish(0);
  EventLogBuilder with;
  with.AddHashed(1, kEvSeparator, Bytes{0, 0, 0, 0});
  with.AddHashed(2, kEvNoAction, AsBytes("StartupLocality"));  // MR index 2, yet not extended
  auto parsed = ParseEventLog(with.Finish(0));
  ASSERT_TRUE(parsed.ok());
  Replayed r = Replay(*parsed);
  EXPECT_EQ(r.rtmrs, b.rtmrs());
  EXPECT_EQ(r.extends[1], 0u);
}

// IMA's binary log, sha384 bank: pcr u32, template digest, name, data.
Bytes ImaEntry(uint32_t pcr, const evidence::Sha384Digest& digest, std::string_view name,
               std::string_view data) {
  ByteWriter w;
  w.U32(pcr);
  w.Put(digest);
  w.U32(uint32_t(name.size()));
  w.Put(AsBytes(name));
  w.U32(uint32_t(data.size()));
  w.Put(AsBytes(data));
  return w.Finish();
}

TEST(EventLogJudge, ImaContinuationExplainsRtmr2) {
  EventLogBuilder b;
  b.AddHashed(3, kEvIpl, AsBytes("kernel_cmdline: ro"));
  auto log = ParseEventLog(b.Finish());
  ASSERT_TRUE(log.ok());
  auto d1 = ossl::Sha384(AsBytes("boot_aggregate")), d2 = ossl::Sha384(AsBytes("/usr/bin/init"));
  Bytes ima = ImaEntry(10, d1, "ima-ng", "data1");
  Bytes e2 = ImaEntry(10, d2, "ima-ng", "data2");
  ima.insert(ima.end(), e2.begin(), e2.end());
  Bytes e3 = ImaEntry(10, evidence::Sha384Digest{}, "ima-ng", "violation");
  ima.insert(ima.end(), e3.begin(), e3.end());
  auto cont = ParseImaLog(ima);
  ASSERT_TRUE(cont.ok()) << cont.error();
  ASSERT_EQ(cont->extends[2].size(), 3u);
  // Expected: the log's RTMR2, then the two digests, then all-ones for the violation.
  auto extend = [](evidence::Sha384Digest r, const evidence::Sha384Digest& d) {
    Bytes buf(r.begin(), r.end());
    buf.insert(buf.end(), d.begin(), d.end());
    return ossl::Sha384(buf);
  };
  evidence::Sha384Digest ones;
  ones.fill(0xFF);
  Rtmrs quote = b.rtmrs();
  quote[2] = extend(extend(extend(quote[2], d1), d2), ones);
  Replayed r = Replay(*log);
  EXPECT_EQ(Judge(r, quote)[2].verdict, Verdict::kMismatch);  // the log alone does not explain it
  auto v = Judge(r, quote, &*cont);
  EXPECT_EQ(v[2].verdict, Verdict::kMatch) << v[2].reason;
  // A truncated IMA log is refused, not silently shortened.
  auto cut = ParseImaLog(ByteSpan(ima).first(ima.size() - 3));
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.error().find("the IMA log is truncated"), std::string::npos) << cut.error();
  // Index 4-7 is neither an RTMR nor a PCR IMA may use (Kconfig: 8-14).
  Bytes bad_pcr = ImaEntry(5, d1, "ima-ng", "");
  EXPECT_EQ(ParseImaLog(bad_pcr).error(),
            "IMA log: entry 0 (offset 0): index 5 names no RTMR (an RTMR index 0-3, as Intel's "
            "IMA-on-RTMR kernels write, or a PCR 8-15, which UEFI 2.10 38.4.1 maps to RTMR2); supply "
            "binary_runtime_measurements_sha384");
  // Intel's IMA-on-RTMR kernels log the RTMR index itself: 2 is RTMR2, not PCR 2 (RTMR1).
  auto rtmr_form = ParseImaLog(ImaEntry(2, d1, "ima-ng", "data1"));
  ASSERT_TRUE(rtmr_form.ok()) << rtmr_form.error();
  EXPECT_EQ(rtmr_form->extends[2], std::vector<evidence::Sha384Digest>{d1});
  EXPECT_TRUE(rtmr_form->extends[1].empty());

  // The same entries as ascii_runtime_measurements_sha384 give the same continuation.
  std::string ascii = "10 " + ToHex(d1) + " ima-ng sha384:" + ToHex(d1) + " boot_aggregate\n" +
                      "10 " + ToHex(d2) + " ima-ng sha384:" + ToHex(d2) + " /usr/bin/init\n" +
                      "10 " + ToHex(evidence::Sha384Digest{}) + " ima-ng sha384:" +
                      ToHex(evidence::Sha384Digest{}) + " /tmp/violation\n";
  auto text = ParseImaLog(AsBytes(ascii));
  ASSERT_TRUE(text.ok()) << text.error();
  EXPECT_EQ(text->extends[2], cont->extends[2]);
  EXPECT_EQ(Judge(r, quote, &*text)[2].verdict, Verdict::kMatch);
  // The sha1 file (40 hex digits) and a PCR without an RTMR are refused, naming the line.
  EXPECT_EQ(ParseImaLog(AsBytes("10 " + std::string(40, 'a') + " ima-ng x\n")).error(),
            "IMA log: line 1 (offset 0): the template hash has 40 characters, not 96 hex digits of "
            "SHA-384; supply ascii_runtime_measurements_sha384 (the sha1 file cannot extend an RTMR)");
  EXPECT_EQ(ParseImaLog(AsBytes("10 " + ToHex(d1) + " ima-ng x\n16 " + ToHex(d1) + " ima-ng y\n")).error(),
            "IMA log: line 2 (offset 109): index 16 names no RTMR (an RTMR index 0-3, as Intel's "
            "IMA-on-RTMR kernels write, or a PCR 8-15, which UEFI 2.10 38.4.1 maps to RTMR2)");
  // Linux prints the index as "%2d": " 2 <hash> ..." is RTMR2 in the ASCII form too.
  auto padded = ParseImaLog(AsBytes(" 2 " + ToHex(d1) + " ima-ng sha384:" + ToHex(d1) + " boot_aggregate\n"));
  ASSERT_TRUE(padded.ok()) << padded.error();
  EXPECT_EQ(padded->extends[2], std::vector<evidence::Sha384Digest>{d1});
  EXPECT_NE(ParseImaLog(AsBytes("10\n")).error().find("expected \"PCR TEMPLATE-HASH"), std::string::npos);
}

// --- Synthetic negatives: each breaks one rule of ParseEventLog ---

// A log of the Spec ID record and one raw TCG_PCR_EVENT2 record.
Bytes WithRecord(const Bytes& record) {
  Bytes log = EventLogBuilder().Finish(0);
  log.insert(log.end(), record.begin(), record.end());
  return log;
}
Bytes Record(uint32_t mr, uint32_t type, uint32_t count, uint16_t alg, uint32_t size,
             size_t data_bytes) {
  ByteWriter w;
  w.U32(mr);
  w.U32(type);
  w.U32(count);
  for (uint32_t i = 0; i < std::min<uint32_t>(count, 1); ++i) {
    w.U16(alg);
    w.Put(Bytes(48, 0x11));
  }
  w.U32(size);
  w.Put(Bytes(data_bytes, 0));
  return w.Finish();
}

std::string ErrorOf(const Bytes& log, ParseOptions o = {}) {
  auto r = ParseEventLog(log, o);
  return r.ok() ? "(parsed)" : r.error();
}

TEST(EventLogNegative, MrIndexFive) {
  EXPECT_EQ(ErrorOf(WithRecord(Record(5, kEvIpl, 1, kAlgSha384, 0, 0))),
            "event log: event 1 (offset 65): MRIndex at offset 65 is 5, above 4: a TD has MRTD (0) "
            "and RTMR0..3 (1..4) only; the log is corrupted");
}

TEST(EventLogNegative, MrIndexZeroOnAnExtendingEvent) {
  EXPECT_EQ(ErrorOf(WithRecord(Record(0, kEvIpl, 1, kAlgSha384, 0, 0))),
            "event log: event 1 (offset 65): MRIndex at offset 65 is 0 (MRTD) on event type "
            "0x0000000d: only EV_NO_ACTION may name MRTD, which is never extended at run time");
  EXPECT_EQ(ErrorOf(WithRecord(Record(0, kEvNoAction, 1, kAlgSha384, 0, 0))), "(parsed)");
}

TEST(EventLogNegative, DigestCountZero) {
  EXPECT_EQ(ErrorOf(WithRecord(Record(1, kEvIpl, 0, kAlgSha384, 0, 0))),
            "event log: event 1 (offset 65): digest count at offset 73 is 0: every event must "
            "carry a SHA-384 digest");
}

TEST(EventLogNegative, AlgorithmNotInSpecId) {
  EXPECT_EQ(ErrorOf(WithRecord(Record(1, kEvIpl, 1, kAlgSha256, 0, 0))),
            "event log: event 1 (offset 65): algorithmId at offset 77 is SHA-256, which the Spec "
            "ID event does not declare, so its digest size is unknown");
}

TEST(EventLogNegative, SpecIdWithoutSha384) {
  Bytes log = EventLogBuilder().Finish(0);
  // The builder's single algorithm entry (id at offset 60): make it SHA-256/32.
  ASSERT_EQ(LoadLe16(log.data() + 60), kAlgSha384);
  log[60] = uint8_t(kAlgSha256);
  log[62] = 32;
  EXPECT_EQ(ErrorOf(log),
            "event log: event 0 (offset 0): digestSizes at offset 56 do not include SHA-384 "
            "(0x000C): TDX RTMRs are SHA-384, so this log cannot be replayed against them; supply "
            "a TD's CCEL log");
}

TEST(EventLogNegative, DataLongerThanLaml) {
  EventLogBuilder b;
  b.AddHashed(1, kEvSeparator, Bytes{0, 0, 0, 0});
  Bytes log = b.Finish(0x1000);
  EXPECT_EQ(ErrorOf(log, {.laml = 0x800}),
            "event log: 4096 bytes, longer than the CCEL table's LAML (2048); the data does not "
            "belong to this table, or carries extra bytes");
  EXPECT_EQ(ErrorOf(log, {.laml = 0x1000}), "(parsed)");
  EXPECT_EQ(ErrorOf(log, {.laml = 0x10000}), "(parsed)");  // shorter than LAML: trimmed fill
}

TEST(EventLogNegative, GarbageAfterTheFill) {
  EventLogBuilder b;
  b.AddHashed(1, kEvSeparator, Bytes{0, 0, 0, 0});
  Bytes log = b.Finish(0x400);
  size_t end = 65 + 70;
  ASSERT_EQ(ParseEventLog(log)->log_bytes, end);
  log[0x300] = 0x42;
  EXPECT_EQ(ErrorOf(log),
            "event log: event 2 (offset 135): fill at offset 768 has byte 0x42 after the log ended "
            "at offset 135 (fill 0xff); the log area holds data after its end: supply the CCEL "
            "data unaltered");
}

TEST(EventLogNegative, HugeEventSizeIsBoundedNotAllocated) {
  EXPECT_EQ(ErrorOf(WithRecord(Record(1, kEvIpl, 1, kAlgSha384, 0xFFFFFFF0u, 0))),
            "event log: event 1 (offset 65): EventSize at offset 127 is 4294967280, above the "
            "limit of 16777216; the log is corrupted");
  EXPECT_EQ(ErrorOf(WithRecord(Record(1, kEvIpl, 1, kAlgSha384, 1000, 10))),
            "event log: event 1 (offset 65): event data (EventSize 1000) at offset 131 needs 1000 "
            "bytes but 10 remain; the log is truncated: supply the whole "
            "/sys/firmware/acpi/tables/data/CCEL");
}

TEST(EventLogNegative, NotAnEventLog) {
  EXPECT_EQ(ErrorOf(Bytes(10, 0x41)),
            "event log: event 0 (offset 0): EventType at offset 4 is 0x41414141, not EV_NO_ACTION "
            "(0x00000003): the log does not start with the Spec ID event; supply the CCEL log data");
  EXPECT_NE(ErrorOf(Bytes{}).find("needs 4 bytes but 0 remain"), std::string::npos);
}

}  // namespace
}  // namespace tdxvirt::eventlog
