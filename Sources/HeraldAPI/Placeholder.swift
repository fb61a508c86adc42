import Hummingbird
public enum HeraldAPI {}
