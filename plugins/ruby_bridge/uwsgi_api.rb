# frozen_string_literal: true

# The UWSGI module (RBAPI-1..3). Constants arrive in the INIT frame; every
# function crosses to the worker as a CALL frame and returns the worker's
# answer. The worker's table (api.py) says which functions exist: the others
# raise NotImplementedError naming the function, from the worker.
module UWSGI
  class << self
    def method_missing(name, *args)
      UWSGIBridge.call(name.to_s, args)
    end

    def respond_to_missing?(name, include_private = false)
      UWSGIBridge.functions.include?(name.to_s) || super
    end
  end
end

module UWSGIBridge
  class << self
    attr_reader :functions

    def install_api(channel, init)
      @channel = channel
      init = utf8(init)
      init.fetch("constants").each { |name, value| UWSGI.const_set(name, value) }
      @functions = init.fetch("functions").freeze
      @functions.each do |name|
        UWSGI.define_singleton_method(name) { |*args| UWSGIBridge.call(name, args) }
      end
      init
    end

    def call(name, args)
      utf8(Value.unpack(@channel.ask(CALL, [name, args], RETURN)))
    end

    # Text from the worker (option values, names) is UTF-8.
    def utf8(value)
      case value
      when String then value.dup.force_encoding(Encoding::UTF_8)
      when Array then value.map { |item| utf8(item) }
      when Hash then value.to_h { |key, item| [utf8(key), utf8(item)] }
      else value
      end
    end
  end
end
