#include "config_file.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <regex>

namespace m2m::cli {
namespace {

// Replaces every ${NAME} in `value` with the variable's value.
Result<std::string> Interpolate(const std::string& key, const std::string& value) {
  static const std::regex kVar(R"(\$\{([A-Za-z_][A-Za-z0-9_]*)\})");
  std::string out;
  size_t last = 0;
  for (auto it = std::sregex_iterator(value.begin(), value.end(), kVar); it != std::sregex_iterator(); ++it) {
    const char* env = std::getenv((*it)[1].str().c_str());
    if (env == nullptr) {
      return Status::Invalid("config key " + key + ": environment variable " + (*it)[1].str() + " is not set");
    }
    out.append(value, last, it->position() - last);
    out += env;
    last = it->position() + it->length();
  }
  out.append(value, last, std::string::npos);
  return out;
}

struct Expander {
  const CLI::App& cmd;
  std::vector<std::string> out;

  Status Option(const std::string& key, const std::string& value) {
    const CLI::Option* option = cmd.get_option_no_throw("--" + key);
    for (const Setting& s : Settings()) {
      if (s.name == key && s.type == SettingType::kSecret) {
        return Status::Invalid("config key " + key + ": it comes from the environment variable " +
                               std::string(s.env) + " only (see docs/configuration.md)");
      }
    }
    if (option == nullptr || key == "config") {
      return Status::Invalid("config key " + key + " is not an option of 'mongo2mysql " + cmd.get_name() +
                             "' (see its --help)");
    }
    M2M_ASSIGN_OR_RETURN(std::string expanded, Interpolate(key, value));
    if (option->get_type_size() == 0) {  // a flag: true adds it, false leaves it out
      if (expanded == "true") out.push_back("--" + key);
      else if (expanded != "false") return Status::Invalid("config key " + key + ": expected true or false");
      return Status::OK();
    }
    out.push_back("--" + key);
    out.push_back(std::move(expanded));
    return Status::OK();
  }

  Status Map(const std::string& prefix, const YAML::Node& map) {
    for (const auto& entry : map) {
      std::string key = entry.first.as<std::string>();
      std::string name = prefix.empty() ? key : prefix + "-" + key;
      const YAML::Node& value = entry.second;
      if (name == "kafka" && value.IsMap()) {
        for (const auto& property : value) {
          std::string k = property.first.as<std::string>();
          M2M_ASSIGN_OR_RETURN(std::string v, Interpolate("kafka." + k, property.second.as<std::string>()));
          out.push_back("--kafka");
          out.push_back(k + "=" + v);
        }
      } else if (value.IsMap()) {
        M2M_RETURN_NOT_OK(Map(name, value));
      } else if (value.IsSequence()) {
        for (const auto& item : value) M2M_RETURN_NOT_OK(Option(name, item.as<std::string>()));
      } else if (value.IsScalar()) {
        M2M_RETURN_NOT_OK(Option(name, value.as<std::string>()));
      } else {
        return Status::Invalid("config key " + name + " has no value");
      }
    }
    return Status::OK();
  }
};

}  // namespace

void AddConfigOption(CLI::App* cmd, Command command) {
  // Expanded before parsing (ExpandConfigFile); declared so --help lists it.
  AddSetting(cmd, command, "config");
  // A file's value and the command line's may name the same option: the command line, later, wins.
  cmd->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
}

Status ExpandConfigFile(const CLI::App& app, std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const CLI::App* cmd = nullptr;
    for (const CLI::App* sub : app.get_subcommands({})) {
      if (sub->get_name() == args[i]) cmd = sub;
    }
    if (cmd == nullptr) continue;
    for (size_t j = i + 1; j < args.size(); ++j) {
      std::string path;
      size_t erase = 0;
      if (args[j] == "--config" && j + 1 < args.size()) {
        path = args[j + 1];
        erase = 2;
      } else if (args[j].rfind("--config=", 0) == 0) {
        path = args[j].substr(9);
        erase = 1;
      } else {
        continue;
      }
      std::ifstream file(path);
      if (!file) return Status::Invalid("cannot read config file " + path);
      YAML::Node root;
      try {
        root = YAML::Load(file);
      } catch (const YAML::Exception& e) {
        return Status::Invalid("config file " + path + " is not valid YAML: " + e.what());
      }
      Expander expander{*cmd, {}};
      if (!root.IsNull()) {
        if (!root.IsMap()) return Status::Invalid("config file " + path + " must be a map of option names to values");
        M2M_RETURN_NOT_OK(expander.Map("", root).WithContext("config file " + path));
      }
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(j), args.begin() + static_cast<std::ptrdiff_t>(j + erase));
      args.insert(args.begin() + static_cast<std::ptrdiff_t>(i + 1), expander.out.begin(), expander.out.end());
      return Status::OK();
    }
    return Status::OK();
  }
  return Status::OK();
}

}  // namespace m2m::cli
