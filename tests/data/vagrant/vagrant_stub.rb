# Evaluates a Vagrantfile against a recording stand-in for Vagrant's config
# object and prints what it configured, as JSON (used by the tests).
require "json"

class Recorder
  attr_reader :calls
  def initialize
    @calls = {}
  end
  def method_missing(name, *args, **kw, &block)
    key = name.to_s
    if key.end_with?("=")
      @calls[key.chomp("=")] = args.first
      return args.first
    end
    child = (@calls[key] ||= Recorder.new)
    if child.is_a?(Recorder) && (args.any? || kw.any?)
      (child.calls["_args"] ||= []) << (args + (kw.empty? ? [] : [kw.transform_keys(&:to_s)]))
    end
    child
  end
  def respond_to_missing?(*) = true
  def to_json(*a) = @calls.to_json(*a)
end

class VM < Recorder
  attr_reader :machines, :providers, :networks
  def initialize
    super
    @machines = {}
    @providers = {}
    @networks = []
  end
  def define(name, &block)
    node = Config.new
    block.call(node)
    @machines[name] = node
  end
  def provider(name, &block)
    p = ProviderConfig.new
    block.call(p)
    @providers[name.to_s] = p
  end
  def network(kind, **opts)
    @networks << [kind.to_s, opts.transform_keys(&:to_s)]
  end
  def synced_folder(*args, **kw)
    @calls["synced_folder"] = args + [kw.transform_keys(&:to_s)]
  end
  def to_json(*a)
    @calls.merge("machines" => @machines, "providers" => @providers, "networks" => @networks).to_json(*a)
  end
end

class ProviderConfig < Recorder
  def customize(cmd)
    (@calls["customize"] ||= []) << cmd.map { |c| c.is_a?(Symbol) ? ":#{c}" : c }
  end
  def storage(kind, **opts)
    (@calls["storage"] ||= []) << [kind.to_s, opts.transform_keys(&:to_s)]
  end
end

class Config
  attr_reader :vm
  def initialize
    @vm = VM.new
  end
  def to_json(*a) = {"vm" => @vm}.to_json(*a)
end

module Vagrant
  def self.configure(version)
    config = Config.new
    yield config
    puts JSON.pretty_generate({"version" => version, "config" => config})
  end
end

path = ARGV.fetch(0)
eval(File.read(path), binding, path)
