// ParseAllocation: every form ComfyUI-MultiGPU documents, the canonical
// ToString() round trip, and the exact error text users read.
#include "distorch/alloc_spec.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "distorch/units.h"

namespace distorch {
namespace {

// Parses, requires success, and checks the canonical text round-trips.
AllocSpec ParseOk(const std::string& text) {
  CAPTURE(text);
  absl::StatusOr<AllocSpec> spec = ParseAllocation(text);
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  std::string canonical = spec->ToString();
  CAPTURE(canonical);
  absl::StatusOr<AllocSpec> again = ParseAllocation(canonical);
  INFO(again.status().ToString());
  REQUIRE(again.ok());
  CHECK(SameMeaning(*spec, *again));
  CHECK(again->ToString() == canonical);
  return *spec;
}

TEST_CASE("ParseAllocation accepts every documented form", "[alloc]") {
  auto [text, canonical, mode,
        implicit_cpu] = GENERATE(table<std::string, std::string, AllocMode, bool>({
      // ComfyUI-MultiGPU README, bytes mode.
      {"cuda:0,2.5gb;cpu,*", "cuda:0,2.5gib;cpu,*", AllocMode::kBytes, false},
      {"cuda:0,4gb;cuda:1,2gb;cpu,*", "cuda:0,4gib;cuda:1,2gib;cpu,*", AllocMode::kBytes, false},
      // README and node docs, ratio mode.
      {"cuda:0,25%;cpu,75%", "cuda:0,25%;cpu,75%", AllocMode::kRatio, true},
      {"cuda:0,8%;cuda:1,8%;cpu,4%", "cuda:0,8%;cuda:1,8%;cpu,4%", AllocMode::kRatio, true},
      {"cuda:0,60%;cuda:1,30%;cpu,10%", "cuda:0,60%;cuda:1,30%;cpu,10%", AllocMode::kRatio, true},
      {"cuda:0,50%;cpu,*", "cuda:0,50%;cpu,*", AllocMode::kRatio, false},
      {"cuda:0,70%;cuda:1,30%", "cuda:0,70%;cuda:1,30%", AllocMode::kRatio, true},
      // README, fraction mode (fractions of each device's total memory).
      {"cuda:0,0.1;cpu,0.5", "cuda:0,0.1;cpu,0.5", AllocMode::kFraction, true},
      {"cuda:0,0.0207;cuda:1,0.1273;cpu,0.0808", "cuda:0,0.0207;cuda:1,0.1273;cpu,0.0808",
       AllocMode::kFraction, true},
      // MultiGPU pads its logged strings with ",0.0" for unused devices.
      {"cuda:0,0.4;cuda:1,0.0", "cuda:0,0.4;cuda:1,0", AllocMode::kFraction, true},
      // Whitespace, case, units, the implicit cpu rest.
      {" CUDA:0 , 3G ; cpu,* ", "cuda:0,3gib;cpu,*", AllocMode::kBytes, false},
      {"cuda:0,100MiB", "cuda:0,100mib", AllocMode::kBytes, true},
      {"cuda:1, 512 kb;Cpu,*;", "cuda:1,512kib;cpu,*", AllocMode::kBytes, false},
      {"cuda:0,1t;cpu,*", "cuda:0,1tib;cpu,*", AllocMode::kBytes, false},
      {"cuda,1b", "cuda:0,1b", AllocMode::kBytes, true},
      {"cpu,*", "cpu,*", AllocMode::kBytes, false},
      {"cpu,*;cuda:0,1gb", "cpu,*;cuda:0,1gib", AllocMode::kBytes, false},
      {"cuda:0,0gb;cpu,*", "cuda:0,0b;cpu,*", AllocMode::kBytes, false},
      {"cuda:0,1;cpu,*", "cuda:0,1;cpu,*", AllocMode::kFraction, false},
      {"cuda:0,.5", "cuda:0,0.5", AllocMode::kFraction, true},
      {"cuda:0,12.50%;cpu,*", "cuda:0,12.5%;cpu,*", AllocMode::kRatio, false},
      {"cuda:0,33.3%;cuda:1,33.3%;cpu,33.4%;sim:0,*", "cuda:0,33.3%;cuda:1,33.3%;cpu,33.4%;sim:0,*",
       AllocMode::kRatio, false},
      // Device letters never decide the mode: mps is a device, not MB.
      {"mps,50%;cpu,*", "mps,50%;cpu,*", AllocMode::kRatio, false},
      {"mlu:0,0.5;cpu,0.5", "mlu:0,0.5;cpu,0.5", AllocMode::kFraction, true},
      {"mps,2gb;cpu,*", "mps,2gib;cpu,*", AllocMode::kBytes, false},
      {"xpu:1,0.25;npu:0,0.25;directml:0,0.1", "xpu:1,0.25;npu:0,0.25;directml:0,0.1",
       AllocMode::kFraction, true},
      // The virtual VRAM node form, and MultiGPU's logged form of it.
      {"compute=cuda:0, virtual_vram_gb=8, donors=cuda:1,cpu",
       "compute=cuda:0,virtual_vram_gb=8,donors=cuda:1,cpu", AllocMode::kVirtualVram, false},
      {"Compute = CUDA:0 ; virtual_vram_gb = 4.0 ; donors = cpu",
       "compute=cuda:0,virtual_vram_gb=4,donors=cpu", AllocMode::kVirtualVram, false},
      {"donor_device=cpu,virtual_vram_gb=0.5,compute_device=cuda:1",
       "compute=cuda:1,virtual_vram_gb=0.5,donors=cpu", AllocMode::kVirtualVram, false},
      {"#cuda:0;4.0;cpu", "compute=cuda:0,virtual_vram_gb=4,donors=cpu", AllocMode::kVirtualVram,
       false},
      {"#cuda:1;8.1;cuda:0,cpu", "compute=cuda:1,virtual_vram_gb=8.1,donors=cuda:0,cpu",
       AllocMode::kVirtualVram, false},
      // The legacy DisTorch v1 nodes' string: the '#' form without '#'.
      {"cuda:0;4.0;cpu", "compute=cuda:0,virtual_vram_gb=4,donors=cpu", AllocMode::kVirtualVram,
       false},
      {" cuda:1 ; 8.5 ; cuda:0 , cpu ;", "compute=cuda:1,virtual_vram_gb=8.5,donors=cuda:0,cpu",
       AllocMode::kVirtualVram, false},
      // MultiGPU's EXPERT#... forms: the expert entries win.
      {"cuda:0,1gb;cpu,*#cuda:0", "cuda:0,1gib;cpu,*#cuda:0", AllocMode::kBytes, false},
      {"cuda:0,50%;cpu,*#cuda:1;4.0;cpu", "cuda:0,50%;cpu,*#cuda:1", AllocMode::kRatio, false},
      {"cuda:0,0.4;cuda:1,0.2#cuda:1;8.0;cuda:0,cpu", "cuda:0,0.4;cuda:1,0.2#cuda:1",
       AllocMode::kFraction, true},
      {"cuda:0,2gb;cpu,*#", "cuda:0,2gib;cpu,*", AllocMode::kBytes, false},
      {" sim:0,25% ; cpu,75% # SIM:1 ", "sim:0,25%;cpu,75%#sim:1", AllocMode::kRatio, true},
      // Donors that repeat the compute device are harmless once the expert
      // string wins (MultiGPU ignores them too).
      {"cuda:0,1gb;cpu,*#cuda:0;4.0;cuda:0", "cuda:0,1gib;cpu,*#cuda:0", AllocMode::kBytes, false},
  }));
  AllocSpec spec = ParseOk(text);
  CHECK(spec.ToString() == canonical);
  CHECK(spec.mode == mode);
  CHECK(spec.implicit_rest_to_cpu == implicit_cpu);
}

TEST_CASE("ParseAllocation reads byte sizes as binary multiples", "[alloc]") {
  auto [text, want] = GENERATE(table<std::string, uint64_t>({
      {"cuda:0,2.5gb;cpu,*", 2684354560},
      {" CUDA:0 , 3G ; cpu,* ", 3221225472},
      {"cuda:0,500mb;cpu,*", 500 * kMiB},
      {"cuda:0,3.0g", 3 * kGiB},
      {"cuda:0,1.5 KiB", 1536},
      {"cuda:0,0.1b;cpu,*", 0},  // fractions of a byte round down
  }));
  CHECK(ParseOk(text).entries[0].bytes == want);
}

TEST_CASE("ParseAllocation keeps order, values and positions", "[alloc]") {
  AllocSpec spec = ParseOk("cuda:0,500mb; cuda:1,3.0g ;cpu,*");
  REQUIRE(spec.entries.size() == 3);
  CHECK(spec.entries[0].device == DeviceId::Cuda(0));
  CHECK(spec.entries[0].position == 0);
  CHECK(spec.entries[1].device == DeviceId::Cuda(1));
  CHECK(spec.entries[1].bytes == 3 * kGiB);
  CHECK(spec.entries[1].position == 14);
  CHECK(spec.entries[2].is_rest);
  CHECK(spec.entries[2].device == DeviceId::Cpu());
  CHECK(spec.entries[2].position == 27);

  AllocSpec ratio = ParseOk("cuda:0,25%;cpu,75%");
  CHECK(ratio.entries[0].ratio == 25);
  CHECK(ratio.entries[1].ratio == 75);
  AllocSpec fraction = ParseOk("cuda:0,0.8;cpu,0.5");
  CHECK(fraction.entries[0].fraction == 0.8);
  CHECK(fraction.entries[1].fraction == 0.5);
}

TEST_CASE("ParseAllocation reads the virtual VRAM forms", "[alloc]") {
  AllocSpec spec = ParseOk("compute=cuda:0, virtual_vram_gb=8, donors=cuda:1,cpu");
  CHECK(spec.entries.empty());
  REQUIRE(spec.virtual_vram.has_value());
  CHECK(spec.virtual_vram->compute == DeviceId::Cuda(0));
  CHECK(spec.virtual_vram->bytes == 8 * kGiB);
  REQUIRE(spec.virtual_vram->donors.size() == 2);
  CHECK(spec.virtual_vram->donors[0] == DeviceId::Cuda(1));
  CHECK(spec.virtual_vram->donors[1] == DeviceId::Cpu());

  AllocSpec logged = ParseOk("#cuda:0;8.0;cuda:1,cpu");
  CHECK(SameMeaning(spec, logged));
  CHECK(ParseOk("#cuda:0;0.0;cpu").virtual_vram->bytes == 0);
}

TEST_CASE("ParseAllocation records the compute device a string names", "[alloc]") {
  auto [text, compute] = GENERATE(table<std::string, std::string>({
      {"cuda:0,1gb;cpu,*#cuda:1", "cuda:1"},
      {"cuda:0,1gb;cpu,*#cuda:1;8.0;cpu", "cuda:1"},
      {"#cuda:1;8.0;cpu", "cuda:1"},
      {"cuda:1;8.0;cpu", "cuda:1"},
      {"compute=sim:1, virtual_vram_gb=1, donors=cpu", "sim:1"},
      {"cuda:0,1gb;cpu,*", ""},
      {"cuda:0,1gb;cpu,*#", ""},
  }));
  AllocSpec spec = ParseOk(text);
  CHECK((spec.compute_device ? spec.compute_device->ToString() : "") == compute);
}

TEST_CASE("The MultiGPU forms mean what their parts say", "[alloc]") {
  // EXPERT#COMPUTE;GB;DONORS is the expert string plus a compute device.
  AllocSpec expert = ParseOk("cuda:0,2.5gb;cpu,*#cuda:0;4.0;cpu");
  AllocSpec entries = ParseOk("cuda:0,2.5gb;cpu,*");
  CHECK_FALSE(SameMeaning(expert, entries));  // the compute device differs
  entries.compute_device = DeviceId::Cuda(0);
  CHECK(SameMeaning(expert, entries));
  CHECK_FALSE(expert.virtual_vram.has_value());
  // The legacy v1 form is the '#' form without '#'.
  CHECK(SameMeaning(ParseOk("cuda:0;8;cuda:1,cpu"), ParseOk("#cuda:0;8;cuda:1,cpu")));
  // An entries string is never read as the legacy form.
  CHECK(ParseOk("cuda:0,1gb;cuda:1,1gb;cpu,*").mode == AllocMode::kBytes);
}

TEST_CASE("ParseAllocation explains every malformed string", "[alloc]") {
  auto [text, message] = GENERATE(table<std::string, std::string>({
      {"",
       "allocation string is empty: give entries like "
       "'cuda:0,2.5gb;cpu,*' or 'compute=cuda:0, virtual_vram_gb=8, "
       "donors=cpu'"},
      {" \t ",
       "allocation string is empty: give entries like "
       "'cuda:0,2.5gb;cpu,*' or 'compute=cuda:0, virtual_vram_gb=8, "
       "donors=cpu'"},
      {"cuda:0,500mb;cuda:1,3.0g;cpu,5gb*",
       "allocation token '5gb*' at position 29: give a size or '*', not both "
       "(write 'cpu,*' for the rest, or 'cpu,5gb' for a fixed size)"},
      {"cpu,**",
       "allocation token '**' at position 4: write a single '*' for "
       "the rest"},
      {"cuda:0,2x",
       "allocation token '2x' at position 7: unknown unit 'x' "
       "(use b, kb, mb, gb or tb)"},
      {"cuda:0,2gb;CUDA:0,1gb",
       "allocation token 'CUDA:0' at position 11: device cuda:0 is listed "
       "twice (first at position 0); give each device once"},
      {"cuda:0,2gb;cuda,1gb",
       "allocation token 'cuda' at position 11: device cuda:0 is listed twice "
       "(first at position 0); give each device once"},
      {"cuda:0,*;cpu,*",
       "allocation token '*' at position 13: '*' is given twice ('*' at "
       "position 7 already takes the rest); only one device can take the "
       "rest"},
      {"gpu:0,1gb",
       "allocation token 'gpu:0' at position 0: unknown device "
       "type 'gpu' in 'gpu:0' (use cpu, cuda:N or sim:N)"},
      {"cuda:0,2gb;cpu,25%",
       "allocation token '25%' at position 15: a percentage cannot be mixed "
       "with a size ('2gb' at position 7); use one kind of value for every "
       "entry: sizes like 2gb, percentages like 25%, or fractions like 0.5"},
      {"cuda:0,0.5;cpu,1gb",
       "allocation token '1gb' at position 15: a size cannot be mixed with a "
       "fraction ('0.5' at position 7); use one kind of value for every "
       "entry: sizes like 2gb, percentages like 25%, or fractions like 0.5"},
      {"cuda:0,50%;cpu,0.5",
       "allocation token '0.5' at position 15: a fraction cannot be mixed "
       "with a percentage ('50%' at position 7); use one kind of value for "
       "every entry: sizes like 2gb, percentages like 25%, or fractions like "
       "0.5"},
      {"cuda:0,1.5",
       "allocation token '1.5' at position 7: a plain number is a fraction of "
       "the device's total memory and must be at most 1; for a size add a "
       "unit ('cuda:0,1.5gb'), for a share add '%' ('cuda:0,1.5%')"},
      {"cuda:0",
       "allocation token 'cuda:0' at position 0: missing value "
       "(write 'cuda:0,*' for the rest, or e.g. 'cuda:0,2gb')"},
      {"cuda:0 2gb",
       "allocation token 'cuda:0 2gb' at position 0: missing "
       "',' between device and value (write 'cuda:0,2gb')"},
      {"cuda:0,-1gb",
       "allocation token '-1gb' at position 7: negative value "
       "(values are 0 or more)"},
      {"cuda:0,0gb;cpu,0b",
       "allocation token 'cuda:0,0gb;cpu,0b' at position 0: every value is "
       "zero, so nothing would be placed; give at least one value above "
       "zero, or '*' for the rest"},
      {"cuda:0,60%;cpu,*;cuda:1,50%",
       "allocation token '*' at position 15: the percentages add up to 110% "
       "and '*' takes what is left of 100%; lower them to 100% in total, or "
       "drop '*' to use them as weights"},
      {"cuda:0,1gb;;cpu,*",
       "allocation token ';' at position 11: empty entry "
       "(remove the extra ';')"},
      {";cpu,*",
       "allocation token ';' at position 0: empty entry (remove the "
       "extra ';')"},
      {"cuda:0,1gb,cpu,*",
       "allocation token 'cuda:0,1gb,cpu,*' at position 0: one device and one "
       "value per entry; separate entries with ';' (e.g. "
       "'cuda:0,2gb;cpu,*')"},
      {",1gb",
       "allocation token ',1gb' at position 0: missing device before "
       "',' (e.g. 'cuda:0,2gb')"},
      {"cuda:0,",
       "allocation token 'cuda:0,' at position 0: missing value "
       "after ',' (give a size like 2.5gb, a percentage like 25%, "
       "a fraction like 0.5, or '*' for the rest)"},
      {"cuda:x,1gb",
       "allocation token 'cuda:x' at position 0: bad device "
       "index in 'cuda:x' (use cuda:N with N >= 0)"},
      {"cuda:0,1.2.3gb",
       "allocation token '1.2.3gb' at position 7: not a number (write digits "
       "with an optional '.', e.g. 2.5)"},
      {"cuda:0,123456789012345678901b",
       "allocation token '123456789012345678901b' at position 7: too many "
       "digits (at most 20 before and after the '.')"},
      {"cuda:0,16777216tb",
       "allocation token '16777216tb' at position 7: too "
       "large (the limit is 16 EiB)"},
      {"cuda:0,150%",
       "allocation token '150%' at position 7: a share cannot be more than "
       "100% (percentages are shares of the model, e.g. "
       "cuda:0,60%;cpu,40%)"},
      {"cuda:0,1e3",
       "allocation token '1e3' at position 7: not a value (give "
       "a size like 2.5gb, a percentage like 25%, or a plain "
       "number like 0.5)"},
      {"cpu,inf",
       "allocation token 'inf' at position 4: not a value (give a "
       "size like 2.5gb, a percentage like 25%, or a plain number "
       "like 0.5)"},
      {"compute=cuda:0,virtual_vram_gb=8,donors=cuda:0",
       "allocation token 'cuda:0' at position 40: donor cuda:0 is the compute "
       "device; donors take the offloaded part, so pick another (e.g. cpu)"},
      {"compute=cuda:0,virtual_vram_gb=8gb,donors=cpu",
       "allocation token '8gb' at position 31: virtual_vram_gb is in GB "
       "already; write the number alone (e.g. 8)"},
      {"compute=cuda:0,virtual_vram_gb=8",
       "allocation token 'compute=cuda:0,virtual_vram_gb=8' at position 0: "
       "missing donors= (the virtual VRAM form is 'compute=cuda:0, "
       "virtual_vram_gb=8, donors=cpu')"},
      {"compute=cuda:0,virtual_vram_gb=-2,donors=cpu",
       "allocation token '-2' at position 31: negative value (give 0 or more "
       "GB)"},
      {"compute=cuda:0,compute=cuda:1,virtual_vram_gb=8,donors=cpu",
       "allocation token 'compute' at position 15: key given twice (first at "
       "position 0)"},
      {"compute=cuda:0,virtual_vram_gb=8,donors=cpu,CPU",
       "allocation token 'CPU' at position 44: donor cpu is listed twice; "
       "give each donor once"},
      {"compute=cuda:0,virtual_vram_gb=8,cpu",
       "allocation token 'cpu' at position 33: not a key=value pair; only "
       "donors= takes a list (the virtual VRAM form is 'compute=cuda:0, "
       "virtual_vram_gb=8, donors=cpu')"},
      {"cuda:0=2gb;cpu,*",
       "allocation token 'cuda:0' at position 0: unknown key (the virtual "
       "VRAM form is 'compute=cuda:0, virtual_vram_gb=8, donors=cpu'; an "
       "allocation entry is DEVICE,VALUE)"},
      {"compute=,virtual_vram_gb=8,donors=cpu",
       "allocation token 'compute=' at position 0: missing value after '='"},
      {"#cuda:0",
       "allocation token '#cuda:0' at position 0: expected "
       "'#COMPUTE;GB;DONORS', e.g. '#cuda:0;8;cpu' (the virtual "
       "VRAM form is 'compute=cuda:0, virtual_vram_gb=8, "
       "donors=cpu')"},
      {"#cuda:0;8;cpu#", "allocation token '#' at position 13: only one '#' is allowed"},
      {"#gpu;8;cpu",
       "allocation token 'gpu' at position 1: unknown device "
       "type 'gpu' in 'gpu' (use cpu, cuda:N or sim:N)"},
      // MultiGPU's EXPERT#... and legacy forms.
      {"cuda:0;abc;cpu",
       "allocation token 'abc' at position 7: not a number (write digits "
       "with an optional '.', e.g. 2.5) (three ';' fields with no ',' in the "
       "first two read as MultiGPU's 'COMPUTE;GB;DONORS' form, e.g. "
       "'cuda:0;8;cpu'; an allocation entry is DEVICE,VALUE)"},
      {"cuda:0;8gb;cpu",
       "allocation token '8gb' at position 7: virtual_vram_gb is in GB "
       "already; write the number alone (e.g. 8) (three ';' fields with no "
       "',' in the first two read as MultiGPU's 'COMPUTE;GB;DONORS' form, "
       "e.g. 'cuda:0;8;cpu'; an allocation entry is DEVICE,VALUE)"},
      {"cuda:0;8;cuda:0",
       "allocation token 'cuda:0' at position 9: donor cuda:0 is the compute "
       "device; donors take the offloaded part, so pick another (e.g. cpu)"},
      {"gpu:0;8;cpu",
       "allocation token 'gpu:0' at position 0: unknown device type 'gpu' in "
       "'gpu:0' (use cpu, cuda:N or sim:N)"},
      {"cuda:0;8;cpu,,cuda:1",
       "allocation token ',' at position 13: empty entry (remove the extra "
       "',')"},
      {"cuda:0,1gb;cpu,*#cuda:0;8",
       "allocation token 'cuda:0;8' at position 17: after 'EXPERT#' give the "
       "compute device ('#cuda:0') or MultiGPU's 'COMPUTE;GB;DONORS' (e.g. "
       "'#cuda:0;8;cpu')"},
      {"cuda:0,1gb;cpu,*#gpu",
       "allocation token 'gpu' at position 17: unknown device type 'gpu' in "
       "'gpu' (use cpu, cuda:N or sim:N)"},
      {"cuda:0,1gb;cpu,*#cuda:0;x;cpu",
       "allocation token 'x' at position 24: not a number (write digits with "
       "an optional '.', e.g. 2.5)"},
      {"cuda:0,1gb;cpu,*#cuda:0;8;gpu",
       "allocation token 'gpu' at position 26: unknown device type 'gpu' in "
       "'gpu' (use cpu, cuda:N or sim:N)"},
      {"cuda:0,1x;cpu,*#cuda:0",
       "allocation token '1x' at position 7: unknown unit 'x' (use b, kb, mb, "
       "gb or tb)"},
      {"cuda:0,1gb;cpu,*#cuda:0#cuda:1",
       "allocation token '#' at position 23: only one '#' is allowed"},
      {"cuda:0,1gb;\x01,*",
       "allocation token '\\x01' at position 11: unknown device type '\\x01' "
       "in '\\x01' (use cpu, cuda:N or sim:N)"},
  }));
  CAPTURE(text);
  absl::StatusOr<AllocSpec> spec = ParseAllocation(text);
  REQUIRE_FALSE(spec.ok());
  CHECK(spec.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(spec.status().message()) == message);
}

TEST_CASE("ParseAllocation rejects, with the token, more bad values", "[alloc]") {
  // Shorter checks: the message must name the token and the problem.
  auto [text, part] = GENERATE(table<std::string, std::string>({
      {"cpu:1,1gb", "there is one cpu device: write cpu"},
      {"corex:0,1gb", "unknown device type 'corex'"},
      {"cuda:0,0%", "every value is zero"},
      {"cuda:0,0", "every value is zero"},
      {"cuda:0,2", "('cuda:0,2gb'), for a share add '%' ('cuda:0,2%')"},
      {"cuda:0,1gb;cpu,*;;", "';' at position 17: empty entry"},
      {"cuda:0,1gb cpu,*", "separate entries with ';'"},
      {"cuda:0,0x10", "'0x10' at position 7: not a value"},
      {"cuda:0,+1gb", "'+1gb' at position 7: not a value"},
      {"cuda:0,1gb%", "'1gb%' at position 7: not a value"},
      {"cuda:0,.", "'.' at position 7: not a number"},
      {"#cuda:0;x;cpu", "'x' at position 8: not a number"},
      {"#cuda:0;8;cuda:0", "donor cuda:0 is the compute device"},
      {"compute=cuda:0,vram=8,donors=cpu", "'vram' at position 15: unknown key"},
      {"virtual_vram_gb=8,donors=cpu", "missing compute="},
  }));
  CAPTURE(text);
  absl::StatusOr<AllocSpec> spec = ParseAllocation(text);
  REQUIRE_FALSE(spec.ok());
  CHECK(spec.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(spec.status().message()), Catch::Matchers::Contains(part));
}

TEST_CASE("AllocSpec::ToString writes sizes in the shortest exact unit", "[alloc]") {
  auto [bytes, want] = GENERATE(table<uint64_t, std::string>({
      {0, "0b"},
      {1, "1b"},
      {1000, "1000b"},  // no unit holds it exactly in fewer digits
      {1023, "1023b"},
      {1024, "1kib"},
      {1536, "1536b"},      // shorter than 1.5kib
      {524288, "512kib"},   // ties with 0.5mib: no leading "0." wins
      {1572864, "1.5mib"},  // shorter than 1536kib
      {100 * kMiB, "100mib"},
      {41943040, "40mib"},
      {2 * kGiB, "2gib"},
      {2684354560, "2.5gib"},              // shorter than 2560mib
      {3 * kGiB + 256 * kMiB, "3.25gib"},  // ties with 3328mib: larger unit
      {12 * kGiB, "12gib"},
      {kTiB, "1tib"},
      {kTiB + kGiB, "1025gib"},
      {kGiB + 1, "1073741825b"},  // no unit holds it exactly: bytes
      {18446744073709551615ULL, "18446744073709551615b"},
      {18446744073709551615ULL - kTiB + 1, "16777215tib"},
  }));
  CAPTURE(bytes);
  AllocSpec spec;
  spec.mode = AllocMode::kBytes;
  AllocEntry entry;
  entry.device = DeviceId::Cuda(0);
  entry.bytes = bytes;
  spec.entries.push_back(entry);
  AllocEntry rest;  // so that 0 bytes is a valid string too
  rest.device = DeviceId::Cpu();
  rest.is_rest = true;
  spec.entries.push_back(rest);
  std::string canonical = spec.ToString();
  CHECK(canonical == "cuda:0," + want + ";cpu,*");
  absl::StatusOr<AllocSpec> again = ParseAllocation(canonical);
  INFO(again.status().ToString());
  REQUIRE(again.ok());
  CHECK(again->entries[0].bytes == bytes);
}

TEST_CASE("AllocSpec::ToString round-trips edge values", "[alloc]") {
  auto text = GENERATE(as<std::string>{}, "cuda:0,0.00000000000000000001",
                       "cuda:0,0.12345678901234567891;cpu,*",
                       "cuda:0,99.99999999999999999999%;cpu,*", "cuda:0,0.1%;cuda:1,0.2%;cpu,*",
                       "cuda:0,16777215.99999999999999999999tb", "cuda:0,18446744073709551615b",
                       "compute=cuda:0,virtual_vram_gb=0.000000001,donors=cpu",
                       "compute=sim:1,virtual_vram_gb=17179869183.99999999,"
                       "donors=sim:0,cpu",
                       "cuda:0,0.5;cpu,0.5#cpu", "cuda:0,99.5%;cpu,*#sim:12");
  ParseOk(text);
}

TEST_CASE("SameMeaning ignores positions only", "[alloc]") {
  AllocSpec a = ParseOk("cuda:0,1gb;cpu,*");
  AllocSpec b = ParseOk("  cuda:0 , 1024mb ; cpu , * ");
  CHECK(SameMeaning(a, b));
  CHECK_FALSE(SameMeaning(a, ParseOk("cuda:0,1gb")));  // rest rule differs
  CHECK_FALSE(SameMeaning(a, ParseOk("cuda:1,1gb;cpu,*")));
  CHECK_FALSE(SameMeaning(a, ParseOk("cuda:0,2gb;cpu,*")));
  CHECK_FALSE(SameMeaning(a, ParseOk("cpu,*;cuda:0,1gb")));  // order matters
}

}  // namespace
}  // namespace distorch
