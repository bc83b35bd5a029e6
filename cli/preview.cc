// mongo2mysql preview: the DDL and DML apply would run for some documents or change events, without
// touching any server.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "settings.h"
#include "m2m/event_codec.h"
#include "m2m/mapping.h"
#include "m2m/sql_writer.h"

namespace m2m::cli {
namespace {

struct PreviewOptions {
  std::string input = "-";
  std::string mapping_file;
  std::string collection = "documents";
  std::string db = "test";
  // Override the mapping file's options only when given.
  std::optional<std::string> separator;
  std::optional<int> flatten_depth;
  std::optional<std::string> scalar_arrays;
  std::optional<int> map_threshold;
  std::optional<int> max_columns;
  bool no_instant = false;
};

// The JSON texts in the input: the elements of a top-level array, else one per non-empty line.
Result<std::vector<std::string>> SplitInput(const std::string& text) {
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    nlohmann::json all = nlohmann::json::parse(text, nullptr, false);
    if (all.is_discarded()) return Status::Invalid("input: not a valid JSON array");
    std::vector<std::string> out;
    for (const auto& item : all) out.push_back(item.dump());
    return out;
  }
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) out.push_back(line);
  }
  return out;
}

// A change event (docs/events.md, recognised by its "payload", "op" or "m2m" member) or a plain
// document, which previews as a snapshot read of --collection.
Result<std::optional<ChangeEvent>> ToEvent(const std::string& json, const PreviewOptions& o) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_object() && (j.contains("payload") || j.contains("op") || j.contains("m2m"))) {
    return DecodeEvent(std::nullopt, json);
  }
  M2M_ASSIGN_OR_RETURN(BsonDocument doc, BsonDocument::FromJson(json));
  M2M_ASSIGN_OR_RETURN(ChangeEvent ev, MakeSnapshotRead(o.db, o.collection, doc.get()));
  return std::optional<ChangeEvent>(std::move(ev));
}

Status RunPreview(const PreviewOptions& o) {
  MappingConfig config;
  if (!o.mapping_file.empty()) {
    M2M_ASSIGN_OR_RETURN(config, LoadMappingFile(o.mapping_file));
  }
  if (o.separator) config.options.separator = *o.separator;
  if (o.flatten_depth) config.options.flatten_depth = *o.flatten_depth;
  if (o.scalar_arrays) {
    config.options.scalar_arrays = *o.scalar_arrays == "table" ? ScalarArrayMode::kTable : ScalarArrayMode::kJson;
  }
  if (o.map_threshold) config.options.map_threshold = *o.map_threshold;
  if (o.max_columns) config.options.limits.max_columns = *o.max_columns;
  M2M_ASSIGN_OR_RETURN(Mapper mapper, Mapper::Make(config));
  SqlOptions sql_options;
  sql_options.instant_add_column = !o.no_instant;

  std::stringstream text;
  if (o.input == "-") {
    text << std::cin.rdbuf();
  } else {
    std::ifstream in(o.input);
    if (!in) return Status::IoError("cannot read " + o.input);
    text << in.rdbuf();
  }
  M2M_ASSIGN_OR_RETURN(std::vector<std::string> items, SplitInput(text.str()));
  Catalog catalog;
  Batch batch;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string where = "input item " + std::to_string(i + 1);
    auto ev = ToEvent(items[i], o);
    if (!ev.ok()) return ev.status().WithContext(where);
    if (!*ev) continue;  // a tombstone
    auto mapped = mapper.Map(**ev, catalog);
    if (!mapped.ok()) return mapped.status().WithContext(where);
    if (mapped->collection) std::printf("-- %s\n", DescribeCollectionOp(*mapped->collection).c_str());
    batch.Add(std::move(*mapped), catalog);
  }
  for (const DocumentOp* d : batch.NeedsFullDocument()) {
    std::printf("-- %s: apply fetches the full document (%s)\n", d->label.c_str(), d->reason.c_str());
  }
  if (!batch.NeedsFullDocument().empty()) return Status::OK();
  M2M_ASSIGN_OR_RETURN(std::vector<std::string> sql, RenderBatch(batch, sql_options));
  for (const std::string& s : sql) std::printf("%s;\n", s.c_str());
  return Status::OK();
}

}  // namespace

void AddPreviewCommand(CLI::App& app, Action& action) {
  auto o = std::make_shared<PreviewOptions>();
  CLI::App* cmd = app.add_subcommand("preview", "Print the SQL apply would run for documents or change events.");
  cmd->footer(
      "Input: Extended JSON, one item per line or one JSON array. An item with a \"payload\", \"op\" or\n"
      "\"m2m\" member is a change event (docs/events.md); any other object is a document, previewed as\n"
      "a snapshot read of --collection. Nothing is sent to any server.\n"
      "Sub-documents keyed by data (ids, numbers, dates) are one JSON column; fields past a table's\n"
      "limits go to its _overflow JSON column (docs/mapping.md, sections 9 and 10).\n"
      "Example: echo '{\"_id\": 1, \"items\": [{\"sku\": \"a\"}]}' | mongo2mysql preview --collection orders");
  cmd->add_option("input", o->input, "File to read; - for stdin")->capture_default_str();
  AddSetting(cmd, kPreview, "mapping", o->mapping_file)->check(CLI::ExistingFile);
  AddSetting(cmd, kPreview, "collection", o->collection);
  AddSetting(cmd, kPreview, "db", o->db);
  auto* separator = AddSetting(cmd, kPreview, "separator");
  auto* depth = AddSetting(cmd, kPreview, "flatten-depth")->check(CLI::Range(0, 32));
  auto* arrays = AddSetting(cmd, kPreview, "scalar-arrays");
  auto* threshold = AddSetting(cmd, kPreview, "map-threshold")->check(CLI::Range(0, 1 << 20));
  auto* columns = AddSetting(cmd, kPreview, "max-columns")->check(CLI::Range(8, 1017));
  AddSetting(cmd, kPreview, "no-instant", o->no_instant);
  cmd->callback([o, separator, depth, arrays, threshold, columns, &action] {
    if (threshold->count()) o->map_threshold = threshold->as<int>();
    if (columns->count()) o->max_columns = columns->as<int>();
    if (separator->count()) o->separator = separator->as<std::string>();
    if (depth->count()) o->flatten_depth = depth->as<int>();
    if (arrays->count()) o->scalar_arrays = arrays->as<std::string>();
    action = [o] { return RunPreview(*o); };
  });
}

}  // namespace m2m::cli
