import ArgumentParser
import HeraldAPI
print("x")
