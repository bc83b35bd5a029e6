// Test-only: loads the engine-neutral scenario files (tests/scenarios/README.md) and applies mapped
// batches to in-memory tables that return values as MariaDB's text protocol does, so scenario
// expectations can be checked without a server.
#pragma once

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "m2m/event_codec.h"
#include "m2m/mapping.h"
#include "m2m/sql_writer.h"
#include "test_source_dir.h"

namespace m2m::testing {

using TextRow = std::vector<std::optional<std::string>>;

struct ExpectedTable {
  std::vector<std::string> columns;
  std::vector<std::string> json_columns;  // compared as parsed JSON
  std::vector<TextRow> rows;
};

struct Scenario {
  std::string name;
  std::string file;
  std::string mapping_yaml;
  std::vector<ChangeEvent> events;
  std::map<std::string, ExpectedTable> expect;
};

inline Result<BsonDocument> Ejson(const YAML::Node& n, const std::string& what) {
  auto doc = BsonDocument::FromJson(n.as<std::string>());
  if (!doc.ok()) return doc.status().WithContext(what);
  return doc;
}

inline Result<Scenario> LoadScenario(const std::string& path) {
  Scenario s;
  s.file = path;
  try {
    YAML::Node root = YAML::LoadFile(path);
    s.name = root["name"].as<std::string>();
    if (root["mapping"]) s.mapping_yaml = root["mapping"].as<std::string>();
    int i = 0;
    for (const YAML::Node& e : root["events"]) {
      const std::string what = path + " event " + std::to_string(i++);
      ChangeEvent ev;
      M2M_ASSIGN_OR_RETURN(ev.kind, ParseEventKind(e["op"].as<std::string>()));
      ev.db = e["db"] ? e["db"].as<std::string>() : "test";
      ev.collection = e["collection"] ? e["collection"].as<std::string>() : "";
      if (e["document"]) {
        M2M_ASSIGN_OR_RETURN(ev.after, Ejson(e["document"], what));
      }
      if (e["key"]) {
        M2M_ASSIGN_OR_RETURN(ev.document_key, Ejson(e["key"], what));
      } else if (ev.after) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, ev.after->get(), "_id")) {
          bson_append_iter(ev.document_key.mutable_get(), "_id", 3, &it);
        }
      }
      if (e["updated"] || e["removed"] || e["truncated"]) {
        UpdateDescription ud;
        if (e["updated"]) {
          M2M_ASSIGN_OR_RETURN(ud.updated_fields, Ejson(e["updated"], what));
        }
        if (e["removed"]) ud.removed_fields = e["removed"].as<std::vector<std::string>>();
        for (const YAML::Node& t : e["truncated"]) {
          ud.truncated_arrays.push_back({t["field"].as<std::string>(), t["new_size"].as<int64_t>()});
        }
        ev.update = std::move(ud);
      }
      if (e["to"]) {
        ev.rename_to_db = ev.db;
        ev.rename_to_collection = e["to"].as<std::string>();
      }
      s.events.push_back(std::move(ev));
    }
    for (const auto& t : root["expect"]) {
      ExpectedTable et;
      et.columns = t.second["columns"].as<std::vector<std::string>>();
      if (t.second["json"]) et.json_columns = t.second["json"].as<std::vector<std::string>>();
      for (const YAML::Node& r : t.second["rows"]) {
        TextRow row;
        for (const YAML::Node& v : r) {
          row.push_back(v.IsNull() ? std::nullopt : std::optional<std::string>(v.as<std::string>()));
        }
        et.rows.push_back(std::move(row));
      }
      s.expect[t.first.as<std::string>()] = std::move(et);
    }
  } catch (const YAML::Exception& e) {
    return Status::Invalid(path + ": " + e.what());
  }
  return s;
}

inline std::vector<std::string> ScenarioFiles() {
  std::vector<std::string> out;
  for (const auto& f : std::filesystem::directory_iterator(std::filesystem::path(kSourceDir) / "tests" / "scenarios")) {
    if (f.path().extension() == ".yaml") out.push_back(f.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A GoogleTest parameter name for a scenario file: its stem with anything not alphanumeric as '_'.
inline std::string ScenarioTestName(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = std::filesystem::path(info.param).stem().string();
  for (char& c : n) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return n;
}

// Maps the scenario's events into one batch (batch_size 0) or one batch per event (1), resolving nothing:
// scenarios only use deltas that map column-wise.
inline Result<std::vector<Batch>> MapScenario(const Scenario& s, Catalog& catalog, size_t batch_size) {
  M2M_ASSIGN_OR_RETURN(MappingConfig config, ParseMappingYaml(s.mapping_yaml.empty() ? "{}" : s.mapping_yaml));
  M2M_ASSIGN_OR_RETURN(Mapper mapper, Mapper::Make(config));
  std::vector<Batch> batches(1);
  for (const ChangeEvent& ev : s.events) {
    if (batch_size && !batches.back().empty()) batches.emplace_back();
    M2M_ASSIGN_OR_RETURN(MappedEvent m, mapper.Map(ev, catalog));
    batches.back().Add(std::move(m), catalog);
  }
  return batches;
}

// Tables as the SQL of a batch leaves them, built from the batch's operations.
class MemoryDatabase {
 public:
  void Apply(const Batch& batch) {
    for (const Batch::Segment& seg : batch.segments()) {
      for (const SchemaChange& ch : seg.schema_changes) ApplyDdl(ch);
      for (const DocumentOp& d : seg.documents) ApplyDocument(seg, d);
      if (seg.collection && seg.collection->propagate) {
        for (const std::string& t : seg.collection->tables) {
          if (seg.collection->kind != CollectionOpKind::kRename) tables_.erase(t);
        }
        for (const auto& [from, to, source] : seg.collection->renames) {
          auto node = tables_.extract(from);
          node.key() = to;
          tables_.insert(std::move(node));
        }
      }
    }
  }

  // Columns in table order and rows (sorted) as text.
  std::map<std::string, std::pair<std::vector<std::string>, std::vector<TextRow>>> Dump() const {
    std::map<std::string, std::pair<std::vector<std::string>, std::vector<TextRow>>> out;
    for (const auto& [name, t] : tables_) {
      auto& [cols, rows] = out[name];
      for (const auto& c : t.columns) cols.push_back(c.name);
      for (const auto& [key, cells] : t.rows) {
        TextRow row;
        for (const auto& c : t.columns) {
          auto it = cells.find(c.name);
          row.push_back(it == cells.end() ? std::nullopt : it->second.text);
        }
        rows.push_back(std::move(row));
      }
      std::sort(rows.begin(), rows.end());
    }
    return out;
  }

 private:
  struct Cell {
    SqlValue value;
    std::optional<std::string> text;
  };
  struct Table {
    std::vector<ColumnSchema> columns;
    std::vector<std::string> pk;
    std::map<std::string, std::map<std::string, Cell>> rows;  // by key text
  };

  static std::string KeyOf(const Table& t, const std::map<std::string, Cell>& cells) {
    std::string k;
    for (const std::string& c : t.pk) k += cells.at(c).text.value_or("") + '\x1f';
    return k;
  }

  void ApplyDdl(const SchemaChange& ch) {
    if (ch.kind == SchemaChangeKind::kCreateTable) {
      if (!tables_.count(ch.table)) tables_[ch.table] = Table{ch.columns, ch.primary_key, {}};
      return;
    }
    Table& t = tables_.at(ch.table);
    for (const ColumnSchema& c : ch.columns) {
      if (ch.kind == SchemaChangeKind::kAddColumns) {
        t.columns.push_back(c);
        continue;
      }
      auto col = std::find_if(t.columns.begin(), t.columns.end(), [&](auto& x) { return x.name == c.name; });
      col->type = c.type;
      // Numeric widening re-renders the value; conversion to text keeps the old text.
      bool keeps_text = IsTextType(c.type) || IsBlobType(c.type) || c.type == SqlType::kKeyText;
      std::map<std::string, std::map<std::string, Cell>> rekeyed;
      for (auto& [k, cells] : t.rows) {
        auto it = cells.find(c.name);
        if (it != cells.end() && it->second.text && !keeps_text) it->second.text = StoredText(it->second.value, c.type);
        rekeyed[KeyOf(t, cells)] = std::move(cells);
      }
      t.rows = std::move(rekeyed);
    }
  }

  std::map<std::string, Cell> Cells(const Table& t, const Row& row) const {
    std::map<std::string, Cell> cells;
    for (const ColumnValue& cv : row) {
      auto col = std::find_if(t.columns.begin(), t.columns.end(), [&](auto& x) { return x.name == cv.column; });
      std::optional<std::string> text;
      if (!cv.value.is_null()) text = StoredText(cv.value, col->type);
      cells[cv.column] = {cv.value, text};
    }
    return cells;
  }

  void DeleteByKey(const std::string& table, const Row& key) {
    auto it = tables_.find(table);
    if (it == tables_.end()) return;
    Table& t = it->second;
    std::map<std::string, Cell> want = Cells(t, key);
    std::erase_if(t.rows, [&](const auto& r) {
      for (const auto& [c, cell] : want) {
        if (r.second.at(c).text != cell.text) return false;
      }
      return true;
    });
  }

  void ApplyDocument(const Batch::Segment& seg, const DocumentOp& d) {
    Table& root = tables_.at(d.table);
    switch (d.kind) {
      case DocumentOpKind::kUpsert:
      case DocumentOpKind::kDelete:
        for (const std::string& child : d.descendants) DeleteByKey(child, d.key);
        if (d.kind == DocumentOpKind::kDelete) {
          DeleteByKey(d.table, d.key);
          return;
        }
        {
          auto cells = Cells(root, d.row);
          root.rows[KeyOf(root, cells)] = cells;
        }
        for (const auto& [child, rows] : d.children) {
          Table& t = tables_.at(child);
          for (const Row& r : rows) {
            auto cells = Cells(t, r);
            t.rows[KeyOf(t, cells)] = cells;
          }
        }
        return;
      case DocumentOpKind::kUpdate: {
        auto row = root.rows.find(KeyOf(root, Cells(root, d.key)));
        if (row == root.rows.end()) return;
        for (auto& [c, cell] : Cells(root, d.set)) row->second[c] = cell;
        return;
      }
      default:
        return;
    }
  }

  std::map<std::string, Table> tables_;
};

// Compares `actual` (column names, rows) with the expectation; empty when equal.
inline std::string Compare(const std::string& table, const ExpectedTable& want,
                           const std::vector<std::string>& columns, std::vector<TextRow> rows) {
  if (columns != want.columns) {
    std::string got;
    for (const auto& c : columns) got += c + " ";
    return table + ": columns are " + got;
  }
  auto normalize = [&](std::vector<TextRow> rs) {
    for (TextRow& r : rs) {
      for (size_t i = 0; i < r.size() && i < columns.size(); ++i) {
        bool json = std::find(want.json_columns.begin(), want.json_columns.end(), columns[i]) != want.json_columns.end();
        if (json && r[i]) r[i] = nlohmann::json::parse(*r[i], nullptr, false).dump();
      }
    }
    std::sort(rs.begin(), rs.end());
    return rs;
  };
  std::vector<TextRow> a = normalize(std::move(rows)), b = normalize(want.rows);
  if (a == b) return "";
  std::string msg = table + ": rows differ; actual:\n";
  for (const TextRow& r : a) {
    msg += "  [";
    for (const auto& v : r) msg += (v ? "\"" + *v + "\"" : "null") + ", ";
    msg += "]\n";
  }
  return msg;
}

}  // namespace m2m::testing
