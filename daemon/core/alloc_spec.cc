// The one parser for allocation strings. docs/allocation-strings.md is the
// user-facing grammar; keep the two in step.
#include "distorch/alloc_spec.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "distorch/device_id.h"
#include "distorch/units.h"

namespace distorch {
namespace {

constexpr char kValueHelp[] =
    "give a size like 2.5gb, a percentage like 25%, a fraction like 0.5, or "
    "'*' for the rest";
constexpr char kVirtualHelp[] =
    "the virtual VRAM form is 'compute=cuda:0, virtual_vram_gb=8, donors=cpu'";
// Floating-point sums of percentages such as 33.3+33.3+33.4 may land a hair
// above 100; that is still "100%".
constexpr double kPercentSlack = 1e-9;

// Quotes a token for a message: escaped (fuzzed or pasted text may hold
// control bytes) and shortened so one bad token cannot flood a log line.
std::string Quote(absl::string_view token) {
  constexpr size_t kMaxShown = 60;
  if (token.size() > kMaxShown) {
    return absl::StrCat("'", absl::CHexEscape(token.substr(0, kMaxShown)), "...'");
  }
  return absl::StrCat("'", absl::CHexEscape(token), "'");
}

bool IsAllAlpha(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isalpha(static_cast<unsigned char>(c))) return false;
  }
  return !s.empty();
}

// Reads one allocation string. Holds the input so every error can give the
// offset of the token it names.
class Parser {
 public:
  explicit Parser(absl::string_view input) : input_(input) {}

  absl::StatusOr<AllocSpec> Parse();

 private:
  // One value after the ',' of an entry, already classified by its form.
  struct Value {
    bool is_rest = false;
    AllocMode mode = AllocMode::kBytes;  // meaningful when !is_rest
    uint64_t bytes = 0;
    double number = 0;  // percentage or fraction
  };

  size_t Pos(absl::string_view piece) const {
    return static_cast<size_t>(piece.data() - input_.data());
  }
  absl::Status Error(absl::string_view token, absl::string_view problem) const {
    return absl::InvalidArgumentError(absl::StrCat("allocation token ", Quote(token),
                                                   " at position ", Pos(token), ": ", problem));
  }

  // Splits `text` on any of `separators` into trimmed pieces. One trailing
  // separator is allowed; any other empty piece is an error.
  absl::StatusOr<std::vector<absl::string_view>> Split(absl::string_view text,
                                                       absl::string_view separators) const;
  absl::StatusOr<DeviceId> Device(absl::string_view token) const;
  absl::StatusOr<Value> ParseValue(absl::string_view token, const DeviceId& device) const;
  absl::StatusOr<AllocSpec> ParseEntries(absl::string_view text) const;
  absl::StatusOr<AllocSpec> ParseKeyValueForm(absl::string_view text) const;
  absl::StatusOr<AllocSpec> ParseMultiGpuForm(absl::string_view text) const;
  absl::StatusOr<AllocSpec> ParseExpertForm(absl::string_view expert,
                                            absl::string_view device_part) const;
  absl::StatusOr<AllocSpec> ParseLegacyForm(absl::string_view text) const;
  // Every virtual VRAM form collects its parts as text, then builds here.
  struct VirtualParts {
    absl::string_view compute, gib;
    std::vector<absl::string_view> donors;
  };
  absl::StatusOr<AllocSpec> BuildVirtual(const VirtualParts& parts,
                                         absl::string_view gib_hint = "") const;
  // virtual_vram_gb as written: a plain number of GiB. `hint` is added to the
  // message of each error.
  absl::StatusOr<uint64_t> ParseGib(absl::string_view gib, absl::string_view hint) const;

  absl::string_view input_;
};

absl::StatusOr<std::vector<absl::string_view>> Parser::Split(absl::string_view text,
                                                             absl::string_view separators) const {
  std::vector<absl::string_view> pieces;
  size_t start = 0;
  while (true) {
    size_t end = text.find_first_of(separators, start);
    absl::string_view raw =
        text.substr(start, end == absl::string_view::npos ? absl::string_view::npos : end - start);
    absl::string_view piece = absl::StripAsciiWhitespace(raw);
    bool last = end == absl::string_view::npos;
    if (piece.empty()) {
      if (last && !pieces.empty()) break;  // a trailing separator
      // Callers pass non-blank text: an empty last piece follows a separator.
      absl::string_view sep =
          last ? text.substr(start > 0 ? start - 1 : 0, 1) : text.substr(end, 1);
      return Error(sep, absl::StrCat("empty entry (remove the extra '", sep, "')"));
    }
    pieces.push_back(piece);
    if (last) break;
    start = end + 1;
  }
  return pieces;
}

absl::StatusOr<DeviceId> Parser::Device(absl::string_view token) const {
  absl::StatusOr<DeviceId> device = ParseDeviceId(token);
  if (!device.ok()) return Error(token, device.status().message());
  return device;
}

absl::StatusOr<Parser::Value> Parser::ParseValue(absl::string_view token,
                                                 const DeviceId& device) const {
  Value value;
  if (token == "*") {
    value.is_rest = true;
    return value;
  }
  std::string name = device.ToString();
  if (token.find('*') != absl::string_view::npos) {
    std::string size = absl::StrReplaceAll(token, {{"*", ""}});
    if (absl::StripAsciiWhitespace(size).empty()) {
      return Error(token, "write a single '*' for the rest");
    }
    // MultiGPU's README shows 'cpu,5gb*' but its code ignored the size and
    // gave the device the rest; we make the writer pick one.
    return Error(token, absl::StrFormat("give a size or '*', not both (write '%s,*' for "
                                        "the rest, or '%s,%s' for a fixed size)",
                                        name, name, absl::StripAsciiWhitespace(size)));
  }
  absl::StatusOr<Quantity> q = ParseQuantity(token);
  if (!q.ok()) return Error(token, q.status().message());
  value.number = q->value;
  switch (q->kind) {
    case Quantity::Kind::kSize:
      value.mode = AllocMode::kBytes;
      value.bytes = q->bytes;
      return value;
    case Quantity::Kind::kPercent:
      value.mode = AllocMode::kRatio;
      if (value.number <= 100) return value;
      return Error(token, absl::StrCat("a share cannot be more than 100% (percentages "
                                       "are shares of the model, e.g. ",
                                       name, ",60%;cpu,40%)"));
    case Quantity::Kind::kPlain:
      value.mode = AllocMode::kFraction;
      if (value.number <= 1) return value;
      break;
  }
  // MultiGPU reads a bare number as a fraction of the device's memory; a bare
  // "2" is most likely a size or a share with its unit left off.
  return Error(token, absl::StrFormat("a plain number is a fraction of the device's total "
                                      "memory and must be at most 1; for a size add a unit "
                                      "('%s,%sgb'), for a share add '%%' ('%s,%s%%')",
                                      name, q->number, name, q->number));
}

// Indexed by AllocMode, for "a percentage cannot be mixed with a size".
constexpr const char* kModeNouns[] = {"a size", "a percentage", "a fraction",
                                      "a virtual VRAM value"};
const char* ModeNoun(AllocMode mode) { return kModeNouns[static_cast<int>(mode)]; }

absl::StatusOr<AllocSpec> Parser::ParseEntries(absl::string_view text) const {
  absl::StatusOr<std::vector<absl::string_view>> pieces = Split(text, ";");
  if (!pieces.ok()) return pieces.status();

  AllocSpec spec;
  std::optional<absl::string_view> mode_token;  // the value that set the mode
  std::optional<absl::string_view> rest_token;
  double values_sum = 0;
  for (absl::string_view entry : *pieces) {
    size_t comma = entry.find(',');
    if (comma == absl::string_view::npos) {
      size_t gap = entry.find_first_of(" \t\r\n\f\v");
      if (gap != absl::string_view::npos && ParseDeviceId(entry.substr(0, gap)).ok()) {
        absl::string_view rest = absl::StripAsciiWhitespace(entry.substr(gap));
        return Error(entry, absl::StrCat("missing ',' between device and value (write '",
                                         entry.substr(0, gap), ",", rest, "')"));
      }
      if (absl::StatusOr<DeviceId> device = ParseDeviceId(entry); device.ok()) {
        return Error(entry, absl::StrFormat("missing value (write '%s,*' for the rest, "
                                            "or e.g. '%s,2gb')",
                                            device->ToString(), device->ToString()));
      }
      return Error(entry, "expected DEVICE,VALUE, e.g. 'cuda:0,2.5gb'");
    }
    if (entry.find(',', comma + 1) != absl::string_view::npos) {
      return Error(entry,
                   "one device and one value per entry; separate entries "
                   "with ';' (e.g. 'cuda:0,2gb;cpu,*')");
    }
    absl::string_view device_text = absl::StripAsciiWhitespace(entry.substr(0, comma));
    absl::string_view value_text = absl::StripAsciiWhitespace(entry.substr(comma + 1));
    if (device_text.empty()) {
      return Error(entry, "missing device before ',' (e.g. 'cuda:0,2gb')");
    }
    absl::StatusOr<DeviceId> device = Device(device_text);
    if (!device.ok()) return device.status();
    if (value_text.empty()) {
      return Error(entry, absl::StrCat("missing value after ',' (", kValueHelp, ")"));
    }
    for (const AllocEntry& earlier : spec.entries) {
      if (earlier.device == *device) {
        return Error(device_text, absl::StrCat("device ", device->ToString(),
                                               " is listed twice (first at position ",
                                               earlier.position, "); give each device once"));
      }
    }
    absl::StatusOr<Value> value = ParseValue(value_text, *device);
    if (!value.ok()) return value.status();

    AllocEntry out;
    out.device = *device;
    out.position = Pos(entry);
    if (value->is_rest) {
      if (rest_token.has_value()) {
        return Error(value_text, absl::StrCat("'*' is given twice (", Quote(*rest_token),
                                              " at position ", Pos(*rest_token),
                                              " already takes the rest); only one device "
                                              "can take the rest"));
      }
      rest_token = value_text;
      out.is_rest = true;
    } else {
      if (!mode_token.has_value()) {
        mode_token = value_text;
        spec.mode = value->mode;
      } else if (value->mode != spec.mode) {
        return Error(
            value_text,
            absl::StrCat(ModeNoun(value->mode), " cannot be mixed with ", ModeNoun(spec.mode), " (",
                         Quote(*mode_token), " at position ", Pos(*mode_token),
                         "); use one kind of value for every entry: sizes "
                         "like 2gb, percentages like 25%, or fractions like 0.5"));
      }
      out.bytes = value->mode == AllocMode::kBytes ? value->bytes : 0;
      out.ratio = value->mode == AllocMode::kRatio ? value->number : 0;
      out.fraction = value->mode == AllocMode::kFraction ? value->number : 0;
      values_sum +=
          value->mode == AllocMode::kBytes ? static_cast<double>(value->bytes) : value->number;
    }
    spec.entries.push_back(out);
  }

  absl::string_view whole = absl::StripAsciiWhitespace(text);
  if (!rest_token.has_value() && values_sum == 0) {
    return Error(whole,
                 "every value is zero, so nothing would be placed; give at least "
                 "one value above zero, or '*' for the rest");
  }
  if (rest_token.has_value() && spec.mode == AllocMode::kRatio &&
      values_sum > 100 + kPercentSlack) {
    return Error(*rest_token,
                 absl::StrCat("the percentages add up to ", values_sum,
                              "% and '*' takes what is left of 100%; lower them to 100% "
                              "in total, or drop '*' to use them as weights"));
  }
  spec.implicit_rest_to_cpu = !rest_token.has_value();
  return spec;
}

absl::StatusOr<uint64_t> Parser::ParseGib(absl::string_view gib, absl::string_view hint) const {
  if (gib[0] == '-') {
    return Error(gib, absl::StrCat("negative value (give 0 or more GB)", hint));
  }
  size_t digits = gib.find_first_not_of("0123456789.");
  if (digits != absl::string_view::npos && digits > 0 &&
      IsAllAlpha(absl::StripLeadingAsciiWhitespace(gib.substr(digits)))) {
    return Error(gib, absl::StrCat("virtual_vram_gb is in GB already; write the number "
                                   "alone (e.g. ",
                                   gib.substr(0, digits), ")", hint));
  }
  absl::StatusOr<uint64_t> bytes = ScaleDecimal(gib, kGiB);  // GiB, as MultiGPU
  if (!bytes.ok()) return Error(gib, absl::StrCat(bytes.status().message(), hint));
  return bytes;
}

absl::StatusOr<AllocSpec> Parser::BuildVirtual(const VirtualParts& parts,
                                               absl::string_view gib_hint) const {
  VirtualVram vram;
  absl::StatusOr<DeviceId> compute = Device(parts.compute);
  if (!compute.ok()) return compute.status();
  vram.compute = *compute;

  absl::StatusOr<uint64_t> bytes = ParseGib(parts.gib, gib_hint);
  if (!bytes.ok()) return bytes.status();
  vram.bytes = *bytes;

  for (absl::string_view token : parts.donors) {
    absl::StatusOr<DeviceId> donor = Device(token);
    if (!donor.ok()) return donor.status();
    if (*donor == vram.compute) {
      return Error(token, absl::StrCat("donor ", donor->ToString(),
                                       " is the compute device; donors take the "
                                       "offloaded part, so pick another (e.g. cpu)"));
    }
    for (const DeviceId& earlier : vram.donors) {
      if (earlier == *donor) {
        return Error(token, absl::StrCat("donor ", donor->ToString(),
                                         " is listed twice; give each donor once"));
      }
    }
    vram.donors.push_back(*donor);
  }
  AllocSpec spec;
  spec.mode = AllocMode::kVirtualVram;
  spec.compute_device = vram.compute;
  spec.virtual_vram = std::move(vram);
  return spec;
}

absl::StatusOr<AllocSpec> Parser::ParseKeyValueForm(absl::string_view text) const {
  absl::StatusOr<std::vector<absl::string_view>> pieces = Split(text, ",;");
  if (!pieces.ok()) return pieces.status();
  VirtualParts parts;
  // The keys as written, for compute=, virtual_vram_gb= and donors=.
  absl::string_view keys[3];
  int key = -1;  // the last key seen; bare items extend donors= only
  for (absl::string_view piece : *pieces) {
    size_t eq = piece.find('=');
    if (eq == absl::string_view::npos) {
      if (key != 2) {
        return Error(piece, absl::StrCat("not a key=value pair; only donors= takes a "
                                         "list (",
                                         kVirtualHelp, ")"));
      }
      parts.donors.push_back(piece);
      continue;
    }
    absl::string_view key_text = absl::StripAsciiWhitespace(piece.substr(0, eq));
    absl::string_view value = absl::StripAsciiWhitespace(piece.substr(eq + 1));
    std::string name = absl::AsciiStrToLower(key_text);
    key = name == "compute" || name == "compute_device" ? 0
          : name == "virtual_vram_gb"                   ? 1
          : name == "donors" || name == "donor_device"  ? 2
                                                        : -1;
    if (key < 0) {
      return Error(
          key_text.empty() ? piece : key_text,
          absl::StrCat("unknown key (", kVirtualHelp, "; an allocation entry is DEVICE,VALUE)"));
    }
    if (!keys[key].empty()) {
      return Error(key_text,
                   absl::StrCat("key given twice (first at position ", Pos(keys[key]), ")"));
    }
    keys[key] = key_text;
    if (value.empty()) return Error(piece, "missing value after '='");
    if (key == 0) parts.compute = value;
    if (key == 1) parts.gib = value;
    if (key == 2) parts.donors.push_back(value);
  }
  static constexpr const char* kKeyNames[] = {"compute=", "virtual_vram_gb=", "donors="};
  for (int i = 0; i < 3; ++i) {
    if (keys[i].empty()) {
      return Error(absl::StripAsciiWhitespace(text),
                   absl::StrCat("missing ", kKeyNames[i], " (", kVirtualHelp, ")"));
    }
  }
  return BuildVirtual(parts);
}

// MultiGPU's loaders log their inputs as one "full allocation string",
// EXPERT#DEVICE_PART: "#cuda:0;4.0;cuda:1,cpu" when only the virtual VRAM
// inputs are set, "cuda:0,2gb;cpu,*#cuda:0" when the expert string is set
// (then the part after '#' only names the compute device; DisTorch2 nodes with
// virtual_vram_gb > 0 still append ";GB;DONORS", which the expert string
// overrides), and "cuda:0,2gb;cpu,*#" from the legacy nodes with
// virtual_vram_gb = 0.
absl::StatusOr<AllocSpec> Parser::ParseMultiGpuForm(absl::string_view text) const {
  absl::string_view whole = absl::StripAsciiWhitespace(text);
  size_t hash = text.find('#');
  absl::string_view body = text.substr(hash + 1);
  if (size_t second = body.find('#'); second != absl::string_view::npos) {
    return Error(body.substr(second, 1), "only one '#' is allowed");
  }
  absl::string_view expert = text.substr(0, hash);
  if (!absl::StripAsciiWhitespace(expert).empty()) {
    return ParseExpertForm(expert, body);
  }
  absl::StatusOr<std::vector<absl::string_view>> pieces;
  if (!absl::StripAsciiWhitespace(body).empty()) pieces = Split(body, ";");
  if (!pieces.ok() || pieces->size() != 3) {
    return Error(whole, absl::StrCat("expected '#COMPUTE;GB;DONORS', e.g. '#cuda:0;8;cpu' (",
                                     kVirtualHelp, ")"));
  }
  absl::StatusOr<std::vector<absl::string_view>> donors = Split((*pieces)[2], ",");
  if (!donors.ok()) return donors.status();
  return BuildVirtual({(*pieces)[0], (*pieces)[1], *donors});
}

// "EXPERT#COMPUTE", "EXPERT#COMPUTE;GB;DONORS" or "EXPERT#": the expert
// entries win, as in MultiGPU, and COMPUTE is recorded as the compute device.
// GB and DONORS are checked for form only: MultiGPU ignores them here, and a
// donor equal to the compute device is harmless when nothing is donated.
absl::StatusOr<AllocSpec> Parser::ParseExpertForm(absl::string_view expert,
                                                  absl::string_view device_part) const {
  absl::StatusOr<AllocSpec> spec = ParseEntries(expert);
  if (!spec.ok()) return spec.status();
  if (absl::StripAsciiWhitespace(device_part).empty()) return spec;
  absl::StatusOr<std::vector<absl::string_view>> pieces = Split(device_part, ";");
  if (!pieces.ok() || (pieces->size() != 1 && pieces->size() != 3)) {
    return Error(absl::StripAsciiWhitespace(device_part),
                 "after 'EXPERT#' give the compute device ('#cuda:0') or "
                 "MultiGPU's 'COMPUTE;GB;DONORS' (e.g. '#cuda:0;8;cpu')");
  }
  absl::StatusOr<DeviceId> compute = Device((*pieces)[0]);
  if (!compute.ok()) return compute.status();
  if (pieces->size() == 3) {
    absl::StatusOr<uint64_t> gib = ParseGib((*pieces)[1], "");
    if (!gib.ok()) return gib.status();
    absl::StatusOr<std::vector<absl::string_view>> donors = Split((*pieces)[2], ",");
    if (!donors.ok()) return donors.status();
    for (absl::string_view donor : *donors) {
      if (absl::StatusOr<DeviceId> d = Device(donor); !d.ok()) return d.status();
    }
  }
  spec->compute_device = *compute;
  return spec;
}

// "cuda:0;4.0;cuda:1,cpu": the legacy DisTorch v1 nodes' virtual VRAM string,
// the '#' form without its '#'.
absl::StatusOr<AllocSpec> Parser::ParseLegacyForm(absl::string_view text) const {
  absl::StatusOr<std::vector<absl::string_view>> pieces = Split(text, ";");
  if (!pieces.ok()) return pieces.status();
  absl::StatusOr<std::vector<absl::string_view>> donors = Split((*pieces)[2], ",");
  if (!donors.ok()) return donors.status();
  // A second field that is not a number most likely belongs to a mistyped
  // entries string; say why it was read as a number.
  return BuildVirtual({(*pieces)[0], (*pieces)[1], *donors},
                      " (three ';' fields with no ',' in the first two read as MultiGPU's "
                      "'COMPUTE;GB;DONORS' form, e.g. 'cuda:0;8;cpu'; an allocation entry is "
                      "DEVICE,VALUE)");
}

// True for "COMPUTE;GB;DONORS": three ';' fields (one trailing ';' allowed),
// the first two without ','. An entries string has a ',' in every entry, so
// no valid one is taken for this form.
bool IsLegacyForm(absl::string_view text) {
  std::vector<absl::string_view> fields = absl::StrSplit(text, ';');
  if (fields.size() == 4 && absl::StripAsciiWhitespace(fields[3]).empty()) {
    fields.pop_back();
  }
  if (fields.size() != 3) return false;
  for (int i = 0; i < 3; ++i) {
    if (absl::StripAsciiWhitespace(fields[i]).empty()) return false;
  }
  return fields[0].find(',') == absl::string_view::npos &&
         fields[1].find(',') == absl::string_view::npos;
}

absl::StatusOr<AllocSpec> Parser::Parse() {
  if (absl::StripAsciiWhitespace(input_).empty()) {
    return absl::InvalidArgumentError(
        "allocation string is empty: give entries like 'cuda:0,2.5gb;cpu,*' or "
        "'compute=cuda:0, virtual_vram_gb=8, donors=cpu'");
  }
  if (input_.find('#') != absl::string_view::npos) return ParseMultiGpuForm(input_);
  if (input_.find('=') != absl::string_view::npos) return ParseKeyValueForm(input_);
  if (IsLegacyForm(input_)) return ParseLegacyForm(input_);
  return ParseEntries(input_);
}

// `bytes` / `unit` written exactly ("2.5", "512"), or nullopt when that
// takes more decimals than a size may have. A unit is a power of two, so the
// long division ends within as many digits as the unit has twos.
std::optional<std::string> ExactScaled(uint64_t bytes, uint64_t unit) {
  std::string text = absl::StrCat(bytes / unit);
  uint64_t rem = bytes % unit;  // below 2^40: rem * 10 cannot overflow
  if (rem == 0) return text;
  text += '.';
  for (int digits = 0; rem != 0; ++digits) {
    if (digits == kMaxDecimalDigits) return std::nullopt;
    rem *= 10;
    text += static_cast<char>('0' + rem / unit);
    rem %= unit;
  }
  return text;
}

// A byte count as people write it, exactly: the shortest of "N.Fb", "N.Fkib"
// ... "N.Ftib" that names exactly `bytes` (2684354560 -> "2.5gib",
// 1000 -> "1000b"). On a tie the larger unit wins unless it needs a leading
// "0." (524288 -> "512kib", not "0.5mib"; 3.25 GiB -> "3.25gib", not
// "3328mib"). Every candidate parses back to `bytes`.
std::string CanonicalSize(uint64_t bytes) {
  static constexpr struct {
    uint64_t multiplier;
    const char* name;
  } kUnits[] = {{kTiB, "tib"}, {kGiB, "gib"}, {kMiB, "mib"}, {kKiB, "kib"}, {1, "b"}};
  std::string best;
  bool best_below_one = false;
  for (const auto& unit : kUnits) {  // largest first: it keeps ties
    std::optional<std::string> number = ExactScaled(bytes, unit.multiplier);
    if (!number) continue;
    std::string text = absl::StrCat(*number, unit.name);
    bool below_one = bytes != 0 && bytes < unit.multiplier;
    if (best.empty() || text.size() < best.size() ||
        (text.size() == best.size() && best_below_one && !below_one)) {
      best = std::move(text);
      best_below_one = below_one;
    }
  }
  return best;  // the "b" form always qualifies
}

}  // namespace

std::string AllocSpec::ToString() const {
  if (mode == AllocMode::kVirtualVram && virtual_vram.has_value()) {
    std::vector<std::string> donors;
    for (const DeviceId& d : virtual_vram->donors) donors.push_back(d.ToString());
    return absl::StrCat("compute=", virtual_vram->compute.ToString(),
                        ",virtual_vram_gb=", FormatScaledDecimal(virtual_vram->bytes, kGiB),
                        ",donors=", absl::StrJoin(donors, ","));
  }
  std::vector<std::string> parts;
  for (const AllocEntry& e : entries) {
    std::string value;
    if (e.is_rest) {
      value = "*";
    } else if (mode == AllocMode::kRatio) {
      value = absl::StrCat(FormatDecimal(e.ratio), "%");
    } else if (mode == AllocMode::kFraction) {
      value = FormatDecimal(e.fraction);
    } else {
      value = CanonicalSize(e.bytes);
    }
    parts.push_back(absl::StrCat(e.device.ToString(), ",", value));
  }
  std::string text = absl::StrJoin(parts, ";");
  if (compute_device.has_value()) {
    absl::StrAppend(&text, "#", compute_device->ToString());
  }
  return text;
}

bool SameMeaning(const AllocSpec& a, const AllocSpec& b) {
  if (a.mode != b.mode || a.implicit_rest_to_cpu != b.implicit_rest_to_cpu ||
      a.compute_device != b.compute_device || a.entries.size() != b.entries.size() ||
      a.virtual_vram.has_value() != b.virtual_vram.has_value()) {
    return false;
  }
  for (size_t i = 0; i < a.entries.size(); ++i) {
    const AllocEntry& x = a.entries[i];
    const AllocEntry& y = b.entries[i];
    if (x.device != y.device || x.is_rest != y.is_rest || x.bytes != y.bytes ||
        x.ratio != y.ratio || x.fraction != y.fraction) {
      return false;
    }
  }
  if (a.virtual_vram.has_value()) {
    const VirtualVram& x = *a.virtual_vram;
    const VirtualVram& y = *b.virtual_vram;
    if (x.compute != y.compute || x.bytes != y.bytes || x.donors != y.donors) return false;
  }
  return true;
}

absl::StatusOr<AllocSpec> ParseAllocation(absl::string_view text) { return Parser(text).Parse(); }

}  // namespace distorch
